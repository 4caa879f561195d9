//! The `bash` tool's command policy: which commands, with which arguments, may run.
//!
//! The allow-list and argument rules are defence in depth and a clear answer to the model; the
//! boundary is the sandbox (a command that finds a way to run another program still runs there).
//! Rules, in order:
//! 1. The line is split into words ([`super::argv`]); shell syntax is refused.
//! 2. The command is a bare name in `ALLOWED_BASH_COMMANDS`; [`NEVER_ALLOWED_COMMANDS`] (shells,
//!    interpreters, command runners such as `env`/`xargs`, pagers and editors that can spawn a
//!    shell, network clients) cannot be allowed at all.
//! 3. No argument names a path outside the workspace: an absolute path must be under the
//!    workspace as the sandbox sees it (or be `/dev/null`, `/dev/zero`, `/dev/random`,
//!    `/dev/urandom`), and `..` must not climb above it. Option values are checked too
//!    (`--opt=/x`, `-o/x`). Lexical only: symlinks are left to the sandbox.
//! 4. Per command: `find` without `-exec`/`-execdir`/`-ok`/`-okdir`/`-delete`/`-fprint*`/`-fls`;
//!    `git` with no global options but a few harmless ones (so no `-c`, `--config-env`,
//!    `--exec-path`, `-C`, `--git-dir`, `--work-tree`), only listed subcommands (so no aliases,
//!    `config`, `submodule`, network commands), no `--exec`/`--upload-pack`/`--receive-pack`/
//!    `--ext-diff`/`--template`/`grep -O`; and it runs with hooks, fsmonitor, pager, editor and
//!    credential helpers switched off by our own `-c` and with system and global config ignored.
//!    Repository config (`.git/config`) cannot be written by the file tools, nor named as the
//!    output of `sort -o`/`uniq`, which closes the config-driven ways to run programs (aliases,
//!    filters) short of a symlink to `.git` checked out of a repository and used as `sort -o`'s
//!    path: what git would then run still runs in the sandbox. `sort --compress-program` is
//!    refused.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::argv::{self, SplitError};
use super::{ToolErrorCode, ToolFailure};

/// The default `ALLOWED_BASH_COMMANDS`: reading and searching files, comparing them, and git for
/// local history. No command here runs another program given on its command line once the rules
/// above are applied.
pub const DEFAULT_ALLOWED_COMMANDS: &str =
    "ls,cat,wc,head,tail,grep,find,echo,sort,uniq,diff,sleep,git";

/// Commands that run programs or code given to them, or give a shell; refused even if listed.
#[rustfmt::skip]
pub const NEVER_ALLOWED_COMMANDS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "busybox",
    "toybox", "env", "xargs", "nohup", "nice", "ionice", "timeout", "setsid", "stdbuf",
    "chroot", "unshare", "nsenter", "sudo", "su", "doas", "runuser", "setpriv", "capsh",
    "script", "watch", "flock", "parallel", "time", "exec", "eval", "command", "builtin", "awk",
    "gawk", "mawk", "nawk", "sed", "perl", "python", "python2", "python3", "ruby", "node",
    "nodejs", "php", "lua", "tclsh", "wish", "expect", "vi", "vim", "nvim", "ex", "ed", "less",
    "more", "man", "pager", "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp",
    "sftp", "telnet", "ftp", "rsync", "make", "gdb", "strace", "ltrace", "bwrap",
    "agent-sandbox-exec",
];

/// Absolute paths outside the workspace that arguments may name.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"];

const FIND_ACTIONS: &[&str] = &[
    "-exec", "-execdir", "-ok", "-okdir", "-delete", "-fprint", "-fprint0", "-fprintf", "-fls",
];

/// Global git options that change nothing about what git runs or where.
const GIT_GLOBAL_OPTIONS: &[&str] = &[
    "--no-pager",
    "--no-replace-objects",
    "--literal-pathspecs",
    "--glob-pathspecs",
    "--noglob-pathspecs",
    "--icase-pathspecs",
    "--no-optional-locks",
    "--version",
];

#[rustfmt::skip]
const GIT_SUBCOMMANDS: &[&str] = &[
    "add", "apply", "blame", "branch", "cat-file", "checkout", "cherry-pick", "clean", "commit",
    "describe", "diff", "diff-tree", "format-patch", "grep", "init", "log", "ls-files",
    "ls-tree", "merge", "merge-base", "mv", "restore", "reset", "rev-list", "rev-parse",
    "revert", "rm", "shortlog", "show", "show-ref", "stash", "status", "switch", "tag",
    "version",
];

/// Subcommand options (prefixes) that run programs or read config from elsewhere.
const GIT_REFUSED_OPTIONS: &[&str] = &[
    "--exec",
    "--upload-pack",
    "--receive-pack",
    "--ext-diff",
    "--template",
    "--open-files-in-pager",
    "--config-env",
];

/// Our `-c` overrides for every git call (command-line config beats repository config).
const GIT_OVERRIDES: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=false",
    "sequence.editor=false",
    "core.sshCommand=false",
    "credential.helper=",
    "protocol.allow=never",
    "user.name=Switchboard agent",
    "user.email=agent@switchboard.invalid",
];

const GIT_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("GIT_PAGER", "cat"),
    ("GIT_EDITOR", "false"),
];

/// Why an allow-list could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0:?} runs other programs or a shell and cannot be allowed")]
    NeverAllowed(String),
    #[error("{0:?} is not a command name (a bare name, no path)")]
    BadName(String),
}

/// The commands the `bash` tool may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandPolicy {
    allowed: BTreeSet<String>,
}

impl Default for CommandPolicy {
    fn default() -> Self {
        Self {
            allowed: DEFAULT_ALLOWED_COMMANDS
                .split(',')
                .map(str::to_string)
                .collect(),
        }
    }
}

/// A command ready for the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl CommandPolicy {
    /// From `ALLOWED_BASH_COMMANDS` (already split on commas; blanks are skipped).
    pub fn new<I, S>(names: I) -> Result<Self, PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut allowed = BTreeSet::new();
        for name in names {
            let name = name.as_ref().trim();
            if name.is_empty() {
                continue;
            }
            if !valid_name(name) {
                return Err(PolicyError::BadName(name.to_string()));
            }
            if NEVER_ALLOWED_COMMANDS.contains(&name) {
                return Err(PolicyError::NeverAllowed(name.to_string()));
            }
            allowed.insert(name.to_string());
        }
        Ok(Self { allowed })
    }

    /// From a comma-separated list.
    pub fn from_list(list: &str) -> Result<Self, PolicyError> {
        Self::new(list.split(','))
    }

    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    /// Checks `line` against every rule; `workspace_view` is the workspace as the sandboxed
    /// command sees it ([`crate::sandbox::Sandbox::workspace_view`]).
    pub fn prepare(
        &self,
        line: &str,
        workspace_view: &Path,
    ) -> Result<PreparedCommand, ToolFailure> {
        let words = argv::split(line).map_err(|e| match e {
            SplitError::Syntax(_) => {
                ToolFailure::new(ToolErrorCode::ShellSyntaxNotAllowed, e.to_string())
            }
            _ => ToolFailure::new(ToolErrorCode::InvalidArguments, e.to_string()),
        })?;
        let Some((name, args)) = words.split_first() else {
            return Err(ToolFailure::new(
                ToolErrorCode::InvalidArguments,
                "empty command",
            ));
        };
        let not_allowed = |why: String| ToolFailure::new(ToolErrorCode::CommandNotAllowed, why);
        if !valid_name(name) {
            return Err(not_allowed(format!(
                "{name:?}: give the command's name, not a path"
            )));
        }
        if NEVER_ALLOWED_COMMANDS.contains(&name.as_str()) {
            return Err(not_allowed(format!(
                "{name} runs other programs or a shell and is never allowed"
            )));
        }
        if !self.allowed.contains(name) {
            let allowed: Vec<&str> = self.allowed().collect();
            return Err(not_allowed(format!(
                "{name} is not allowed; the allowed commands are {}",
                allowed.join(", ")
            )));
        }
        for arg in args {
            check_path_argument(arg, workspace_view)?;
        }
        let mut env = Vec::new();
        let mut argv = words.clone();
        match name.as_str() {
            "find" => check_find(args)?,
            "sort" | "uniq" => check_writer(name, args)?,
            "git" => {
                check_git(args)?;
                argv = vec!["git".to_string()];
                for o in GIT_OVERRIDES {
                    argv.push("-c".into());
                    argv.push((*o).into());
                }
                argv.extend(args.iter().cloned());
                env = GIT_ENV
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
            _ => {}
        }
        Ok(PreparedCommand { argv, env })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

fn refused_argument(why: String) -> ToolFailure {
    ToolFailure::new(ToolErrorCode::ArgumentNotAllowed, why)
}

/// The parts of `arg` that could be a path: itself, an option's value after `=`, and a short
/// option's attached value (`-o/x`).
fn path_candidates(arg: &str) -> Vec<&str> {
    let mut out = vec![arg];
    if let Some((_, value)) = arg.split_once('=') {
        out.push(value);
    }
    if arg.starts_with('-')
        && !arg.starts_with("--")
        && let Some(rest) = arg.get(2..).filter(|r| !r.is_empty())
    {
        out.push(rest);
    }
    out
}

fn check_path_argument(arg: &str, view: &Path) -> Result<(), ToolFailure> {
    for candidate in path_candidates(arg) {
        let path = Path::new(candidate);
        let outside = if path.is_absolute() {
            let normal = normalize(path);
            !normal.starts_with(view) && !DEVICES.iter().any(|d| normal == Path::new(d))
        } else {
            climbs_out(path)
        };
        if outside {
            return Err(ToolFailure::new(
                ToolErrorCode::PathOutsideWorkspace,
                format!(
                    "argument {arg:?} names a path outside the workspace; use paths relative to \
                     the current directory"
                ),
            ));
        }
    }
    Ok(())
}

/// `path` with `.` and `..` resolved lexically (`..` at the root stays at the root).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// True if the relative `path` goes above its starting directory.
fn climbs_out(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn check_find(args: &[String]) -> Result<(), ToolFailure> {
    match args
        .iter()
        .find(|a| FIND_ACTIONS.contains(&a.as_str()) || a.starts_with("-fprint"))
    {
        Some(a) => Err(refused_argument(format!(
            "find {a} is not allowed (it runs commands, deletes or writes files); find can \
             only list"
        ))),
        None => Ok(()),
    }
}

/// `sort -o FILE`, `uniq IN OUT` write files: never into `.git`; and sort's compressor is a
/// program of the caller's choice.
fn check_writer(name: &str, args: &[String]) -> Result<(), ToolFailure> {
    for arg in args {
        if arg.starts_with("--compress-program") {
            return Err(refused_argument(format!("{name} {arg} runs a program")));
        }
        if path_candidates(arg).iter().any(|c| touches_git_dir(c)) {
            return Err(refused_argument(format!(
                "{name} may not write inside .git ({arg:?})"
            )));
        }
    }
    Ok(())
}

/// True if a component of `path` is `.git` (any case, for case-insensitive file systems).
pub(crate) fn touches_git_dir(path: &str) -> bool {
    path.split('/').any(|c| c.eq_ignore_ascii_case(".git"))
}

fn check_git(args: &[String]) -> Result<(), ToolFailure> {
    let mut rest = args.iter();
    let subcommand = loop {
        let Some(arg) = rest.next() else {
            return Err(refused_argument(
                "git needs a subcommand, e.g. git status".into(),
            ));
        };
        if !arg.starts_with('-') {
            break arg;
        }
        if !GIT_GLOBAL_OPTIONS.contains(&arg.as_str()) {
            return Err(refused_argument(format!(
                "git {arg} is not allowed (git's global options can run programs or reach \
                 outside the workspace); allowed: {}",
                GIT_GLOBAL_OPTIONS.join(" ")
            )));
        }
    };
    if !GIT_SUBCOMMANDS.contains(&subcommand.as_str()) {
        return Err(refused_argument(format!(
            "git {subcommand} is not allowed; allowed subcommands: {}",
            GIT_SUBCOMMANDS.join(" ")
        )));
    }
    for arg in rest {
        let refused = GIT_REFUSED_OPTIONS.iter().any(|o| arg.starts_with(o))
            || (subcommand == "grep" && arg.starts_with("-O"));
        if refused {
            return Err(refused_argument(format!(
                "git {subcommand} {arg} is not allowed (it runs a program)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_arguments_stay_in_the_workspace() {
        let view = Path::new("/work");
        for ok in [
            "src",
            "a/../b",
            "/work/x",
            "/work",
            "-n",
            "--color=auto",
            "/dev/null",
        ] {
            assert!(check_path_argument(ok, view).is_ok(), "{ok}");
        }
        for bad in [
            "/etc/shadow",
            "../x",
            "a/../../x",
            "/work/../etc",
            "/workx",
            "--file=/etc/passwd",
            "-f/etc/passwd",
            "-f../x",
            "/",
        ] {
            assert!(check_path_argument(bad, view).is_err(), "{bad}");
        }
    }

    #[test]
    fn never_allowed_commands_cannot_be_configured() {
        assert_eq!(
            CommandPolicy::from_list("ls,sh"),
            Err(PolicyError::NeverAllowed("sh".into()))
        );
        assert!(matches!(
            CommandPolicy::from_list("ls,/bin/ls"),
            Err(PolicyError::BadName(_))
        ));
        let policy = CommandPolicy::from_list(" ls, cat,,wc").unwrap();
        assert_eq!(policy.allowed().collect::<Vec<_>>(), ["cat", "ls", "wc"]);
    }
}
