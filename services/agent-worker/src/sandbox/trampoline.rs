//! The re-exec trampoline: `agent-sandbox-exec [options] -- COMMAND ARGS…`.
//!
//! The workspace forbids `unsafe`, so nothing can run between `fork` and `exec` in the worker
//! (`pre_exec`). Instead the worker starts this small program (inside bwrap, or directly in the
//! Landlock mode), which restricts *itself* with safe APIs (rlimits, Landlock, seccomp; all are
//! inherited across `exec` and by children) and then replaces itself with the command. [`run`] is
//! public so a multi-command binary (`switchboard`) can also expose it as a hidden subcommand.
//!
//! Fail closed: if any requested restriction cannot be applied the command is not started; the
//! trampoline exits [`SETUP_FAILED_EXIT`] with a line starting [`SETUP_FAILED_PREFIX`] on stderr,
//! which the worker turns into `sandbox_unavailable`.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{ExecOutput, ProcessLimits, confine};

/// Exit status of a trampoline that refused to start the command.
pub const SETUP_FAILED_EXIT: u8 = 125;
/// First words of its stderr line then.
pub const SETUP_FAILED_PREFIX: &str = "agent-sandbox-exec: setup failed: ";

/// What the trampoline applies to itself besides the rlimits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The seccomp filter (no network sockets, no `connect`, no leaving the process group, …).
    pub seccomp: bool,
    /// Landlock: only these paths are reachable.
    pub landlock: Option<LandlockPaths>,
}

/// The file system a Landlock-confined command may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LandlockPaths {
    /// Read and execute.
    pub read_only: Vec<PathBuf>,
    /// Everything, including create, remove and rename beneath them.
    pub read_write: Vec<PathBuf>,
}

/// The trampoline's arguments for `argv` under `limits` and `confinement`.
pub fn encode_args(
    limits: &ProcessLimits,
    confinement: &Confinement,
    argv: &[String],
) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for (flag, value) in [
        ("--cpu", limits.cpu_seconds),
        ("--as", limits.memory_bytes),
        ("--fsize", limits.file_size_bytes),
        ("--nofile", limits.open_files),
        ("--nproc", limits.processes),
    ] {
        out.push(flag.into());
        out.push(value.to_string().into());
    }
    if confinement.seccomp {
        out.push("--seccomp".into());
    }
    if let Some(paths) = &confinement.landlock {
        out.push("--landlock".into());
        for p in &paths.read_only {
            out.push("--ro".into());
            out.push(p.into());
        }
        for p in &paths.read_write {
            out.push("--rw".into());
            out.push(p.into());
        }
    }
    out.push("--".into());
    out.extend(argv.iter().map(OsString::from));
    out
}

#[derive(Debug, Default)]
struct Parsed {
    limits: ProcessLimits,
    confinement: Confinement,
    argv: Vec<OsString>,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut args = args.into_iter();
    let mut landlock = LandlockPaths::default();
    let mut use_landlock = false;
    while let Some(arg) = args.next() {
        let flag = arg.to_str().unwrap_or_default().to_string();
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--" => {
                parsed.argv = args.collect();
                break;
            }
            "--seccomp" => parsed.confinement.seccomp = true,
            "--landlock" => use_landlock = true,
            "--ro" => landlock.read_only.push(value()?.into()),
            "--rw" => landlock.read_write.push(value()?.into()),
            "--cpu" => parsed.limits.cpu_seconds = number(&value()?)?,
            "--as" => parsed.limits.memory_bytes = number(&value()?)?,
            "--fsize" => parsed.limits.file_size_bytes = number(&value()?)?,
            "--nofile" => parsed.limits.open_files = number(&value()?)?,
            "--nproc" => parsed.limits.processes = number(&value()?)?,
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    if parsed.argv.is_empty() {
        return Err("no command after --".into());
    }
    if use_landlock {
        parsed.confinement.landlock = Some(landlock);
    }
    Ok(parsed)
}

fn number(value: &OsStr) -> Result<u64, String> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("not a number: {value:?}"))
}

/// The trampoline's `main`, given its arguments after the program name (and after any
/// subcommand). Returns only if the command could not be started.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let parsed = match parse(args) {
        Ok(parsed) => parsed,
        Err(why) => return setup_failed(&why),
    };
    if let Err(why) = confine::set_rlimits(&parsed.limits) {
        return setup_failed(&why);
    }
    if let Some(paths) = &parsed.confinement.landlock
        && let Err(why) = confine::apply_landlock(paths)
    {
        return setup_failed(&why);
    }
    if parsed.confinement.seccomp
        && let Err(why) = confine::apply_seccomp()
    {
        return setup_failed(&why);
    }
    let Some((program, args)) = parsed.argv.split_first() else {
        return setup_failed("no command");
    };
    // `exec` searches PATH of this (already minimal) environment and returns only on failure.
    let err = std::process::Command::new(program).args(args).exec();
    eprintln!("{}: {err}", program.to_string_lossy());
    // The shell's conventions: 127 not found, 126 found but not runnable.
    ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}

fn setup_failed(why: &str) -> ExitCode {
    eprintln!("{SETUP_FAILED_PREFIX}{why}");
    ExitCode::from(SETUP_FAILED_EXIT)
}

/// The reason, when `output` is that of a trampoline that refused to start the command.
pub(crate) fn setup_failure(output: &ExecOutput) -> Option<String> {
    if output.exit_code != Some(i32::from(SETUP_FAILED_EXIT)) {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr.bytes);
    let line = stderr.lines().next()?;
    line.strip_prefix(SETUP_FAILED_PREFIX).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let limits = ProcessLimits {
            cpu_seconds: 7,
            ..ProcessLimits::default()
        };
        let confinement = Confinement {
            seccomp: true,
            landlock: Some(LandlockPaths {
                read_only: vec!["/usr".into()],
                read_write: vec!["/w".into()],
            }),
        };
        let argv = vec!["echo".to_string(), "--".to_string(), "--cpu".to_string()];
        let parsed = parse(encode_args(&limits, &confinement, &argv)).unwrap();
        assert_eq!(parsed.limits, limits);
        assert_eq!(parsed.confinement, confinement);
        assert_eq!(parsed.argv, vec!["echo", "--", "--cpu"]);
    }

    #[test]
    fn refuses_unknown_options_and_missing_command() {
        assert!(parse(["--bogus".into(), "--".into(), "x".into()]).is_err());
        assert!(parse(["--cpu".into(), "1".into(), "--".into()]).is_err());
        assert!(parse(["--cpu".into(), "x".into(), "--".into(), "y".into()]).is_err());
    }
}
