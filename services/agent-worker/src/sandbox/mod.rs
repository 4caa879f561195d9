//! The command sandbox of the agents' tools, failing closed.
//!
//! A command runs as `trampoline [limits] -- argv`: the trampoline ([`trampoline`], the
//! `agent-sandbox-exec` binary) sets rlimits on itself, applies seccomp (and Landlock in the
//! fallback mode) and then `exec`s the command, because the workspace forbids `unsafe` and so
//! `pre_exec`. Which outer layer wraps it is decided once at start by [`Sandbox::detect`]:
//!
//! - [`SandboxMode::Bubblewrap`]: `bwrap` with every namespace unshared (no network, own pids),
//!   a read-only `/usr`, the workspace read-write at `/work`, a size-capped `/tmp`, nothing else
//!   of the host ([`bwrap`]).
//! - [`SandboxMode::Landlock`]: where user namespaces are refused (Docker's default seccomp
//!   profile), Landlock limits the file system to read-only `/usr` (and the loader's files) plus
//!   the workspace and a per-run tmp read-write; Landlock and seccomp deny the network.
//! - [`SandboxMode::Unavailable`]: neither works; [`Sandbox::run`] refuses every command.
//!
//! Each mode is probed by running a marker command under the exact arguments used later and
//! checking that the marker came back, since bwrap can fail without saying so.
//!
//! Killing: the spawned process (bwrap or the trampoline) leads a new process group, and
//! timeout, cancellation and the end of the command all SIGKILL that group. Under bwrap the
//! command runs in its own session, so it is reached through `--die-with-parent` and the pid
//! namespace (whose processes all die with its init). In the Landlock mode the seccomp filter
//! denies `setsid`/`setpgid`, so nothing the command starts can leave the group.
//!
//! Known limits: `RLIMIT_NPROC` is per user. The kernel does not enforce it for uid 0 (the
//! worker image runs as uid 10001). Under bwrap it counts only the sandbox's processes (its own
//! user namespace); in the Landlock mode it counts every process and thread of the worker's user,
//! so it must be set above the worker's own count. The Landlock mode has no size cap on its
//! per-run tmp beyond the file-size rlimit, and no pid namespace (`/proc` is unreachable instead).

mod bwrap;
mod confine;
mod process;
pub mod trampoline;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use process::{CappedOutput, ExecError, ExecOutput};

/// Where the sandbox mounts the workspace (bubblewrap mode); also the sandboxed `HOME`.
pub const WORKSPACE_MOUNT: &str = "/work";
/// The sandboxed `PATH`: only the read-only system directories.
pub const SANDBOX_PATH: &str = "/usr/bin:/bin";
/// Debian's bubblewrap.
pub const BWRAP: &str = "/usr/bin/bwrap";
/// The trampoline binary built by this crate.
pub const TRAMPOLINE_BIN: &str = "agent-sandbox-exec";

/// How commands are confined on this machine (exported as a metric by the worker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    Bubblewrap,
    Landlock,
    Unavailable,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bubblewrap => "bubblewrap",
            Self::Landlock => "landlock",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Resource limits applied to the command (rlimits, inherited by its children) and to `/tmp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessLimits {
    /// `RLIMIT_CPU` (SIGXCPU at the soft limit, SIGKILL one second later).
    pub cpu_seconds: u64,
    /// `RLIMIT_AS`: address space, an upper bound of the memory one process can use.
    pub memory_bytes: u64,
    /// `RLIMIT_FSIZE`: the largest file a process can write (EFBIG/SIGXFSZ beyond).
    pub file_size_bytes: u64,
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// `RLIMIT_NPROC`: processes and threads of the user (see the crate docs for its limits).
    pub processes: u64,
    /// Size of the `/tmp` tmpfs (bubblewrap mode only).
    pub tmp_bytes: u64,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        Self {
            cpu_seconds: 30,
            memory_bytes: 1 << 30,
            file_size_bytes: 100 << 20,
            open_files: 256,
            processes: 64,
            tmp_bytes: 64 << 20,
        }
    }
}

/// How to start the trampoline: its binary and any leading arguments (so a multi-command binary
/// such as `switchboard` can carry it as a hidden subcommand: `["sandbox-exec"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trampoline {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Trampoline {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// `agent-sandbox-exec` next to the running executable (or one directory up, where test
    /// binaries live in `target/*/deps`).
    pub fn locate() -> Option<Self> {
        let exe = std::env::current_exe().ok()?;
        let dir = exe.parent()?;
        [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .map(|d| d.join(TRAMPOLINE_BIN))
            .find(|p| p.is_file())
            .map(Self::new)
    }
}

/// One command to run in the sandbox.
#[derive(Clone, Copy, Debug)]
pub struct ExecRequest<'a> {
    /// `argv[0]` is looked up in [`SANDBOX_PATH`]; nothing is interpreted by a shell.
    pub argv: &'a [String],
    /// The workspace (host path): the command's cwd and only writable directory.
    pub workspace: &'a Path,
    /// Variables added to the minimal environment (`PATH`, `HOME`, `LANG`).
    pub env: &'a [(String, String)],
    pub limits: &'a ProcessLimits,
    /// Wall-clock limit; the process group is killed when it passes.
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub max_output_bytes: usize,
    /// Cancelling kills the process group at once.
    pub cancel: &'a CancellationToken,
}

/// The sandbox chosen for this process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    trampoline: Option<Trampoline>,
}

impl Sandbox {
    /// Probes bubblewrap, then Landlock, and keeps the first that works. Blocking (a few tens of
    /// milliseconds, at most [`PROBE_TIMEOUT`] per mode): call it at start.
    pub fn detect(trampoline: Option<Trampoline>) -> Self {
        Self::detect_among(
            trampoline,
            &[SandboxMode::Bubblewrap, SandboxMode::Landlock],
        )
    }

    /// Probes only bubblewrap.
    pub fn detect_bubblewrap(trampoline: Option<Trampoline>) -> Self {
        Self::detect_among(trampoline, &[SandboxMode::Bubblewrap])
    }

    /// Probes only the Landlock fallback (skips bwrap), as where user namespaces are refused.
    pub fn detect_landlock(trampoline: Option<Trampoline>) -> Self {
        Self::detect_among(trampoline, &[SandboxMode::Landlock])
    }

    /// A sandbox that refuses every command.
    pub fn unavailable() -> Self {
        Self {
            mode: SandboxMode::Unavailable,
            trampoline: None,
        }
    }

    fn detect_among(trampoline: Option<Trampoline>, modes: &[SandboxMode]) -> Self {
        // Absolute, as bwrap binds it into the sandbox from its own cwd.
        let trampoline = trampoline.and_then(|t| {
            let program = std::fs::canonicalize(&t.program).ok()?;
            Some(Trampoline { program, ..t })
        });
        let Some(trampoline) = trampoline else {
            tracing::warn!(
                "sandbox: no {TRAMPOLINE_BIN} to run commands through; they are refused"
            );
            return Self::unavailable();
        };
        for &mode in modes {
            let candidate = Self {
                mode,
                trampoline: Some(trampoline.clone()),
            };
            match candidate.probe_mode() {
                Ok(()) => return candidate,
                Err(why) => tracing::warn!(mode = mode.as_str(), %why, "sandbox: probe failed"),
            }
        }
        Self::unavailable()
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// The workspace as the sandboxed command sees it: `/work` under bubblewrap, else its
    /// canonical path.
    pub fn workspace_view(&self, workspace: &Path) -> PathBuf {
        match self.mode {
            SandboxMode::Bubblewrap => PathBuf::from(WORKSPACE_MOUNT),
            _ => std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf()),
        }
    }

    /// Runs `req.argv` in the sandbox, output capped while it is read.
    pub async fn run(&self, req: &ExecRequest<'_>) -> Result<ExecOutput, ExecError> {
        let (cmd, tmp) = self.command(req)?;
        let result = process::run_command(cmd, req).await;
        if let Some(tmp) = tmp {
            // std's remove_dir_all does not follow symlinks the command may have left there.
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(tmp)).await;
        }
        result
    }

    /// Runs `req.argv` with no sandbox and no limits: only for [`time_exec`]'s comparison.
    async fn run_unsandboxed(req: &ExecRequest<'_>) -> Result<ExecOutput, ExecError> {
        let Some((program, args)) = req.argv.split_first() else {
            return Err(ExecError::Setup("empty command".into()));
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args).current_dir(req.workspace);
        process::run_command(cmd, req).await
    }

    /// The command to spawn, and the per-run tmp directory to remove afterwards.
    fn command(
        &self,
        req: &ExecRequest<'_>,
    ) -> Result<(std::process::Command, Option<PathBuf>), ExecError> {
        let trampoline = match (&self.trampoline, self.mode) {
            (Some(t), SandboxMode::Bubblewrap | SandboxMode::Landlock) => t,
            _ => return Err(ExecError::Unavailable),
        };
        if req.argv.is_empty() {
            return Err(ExecError::Setup("empty command".into()));
        }
        // Absolute and free of symlinks: bwrap binds it from "/", Landlock rules name it.
        let workspace = std::fs::canonicalize(req.workspace)
            .map_err(|e| ExecError::Setup(format!("workspace {:?}: {e}", req.workspace)))?;
        let req = &ExecRequest {
            workspace: &workspace,
            ..*req
        };
        if self.mode == SandboxMode::Bubblewrap {
            let mut cmd = std::process::Command::new(BWRAP);
            cmd.args(bwrap::arguments(req, trampoline))
                .env_clear()
                .current_dir("/");
            return Ok((cmd, None));
        }
        let tmp = per_run_tmp().map_err(|e| ExecError::Setup(format!("per-run tmp: {e}")))?;
        let confinement = trampoline::Confinement {
            seccomp: true,
            landlock: Some(confine::landlock_paths(req.workspace, &tmp)),
        };
        let mut cmd = std::process::Command::new(&trampoline.program);
        cmd.args(&trampoline.args)
            .args(trampoline::encode_args(req.limits, &confinement, req.argv))
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .env("HOME", req.workspace)
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", &tmp)
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .current_dir(req.workspace);
        Ok((cmd, Some(tmp)))
    }

    /// Runs `echo MARKER` exactly as [`Sandbox::run`] would, in a scratch workspace.
    fn probe_mode(&self) -> Result<(), String> {
        let ws = per_run_tmp().map_err(|e| format!("scratch workspace: {e}"))?;
        let marker = format!("sb-sandbox-probe-{}", std::process::id());
        let argv = vec!["echo".to_string(), marker.clone()];
        let cancel = CancellationToken::new();
        let limits = ProcessLimits::default();
        let req = ExecRequest {
            argv: &argv,
            workspace: &ws,
            env: &[],
            limits: &limits,
            timeout: PROBE_TIMEOUT,
            max_output_bytes: 4096,
            cancel: &cancel,
        };
        let result = self
            .command(&req)
            .map_err(|e| e.to_string())
            .and_then(|(cmd, tmp)| {
                let out = process::run_blocking(cmd, PROBE_TIMEOUT);
                if let Some(tmp) = tmp {
                    let _ = std::fs::remove_dir_all(tmp);
                }
                out
            });
        let _ = std::fs::remove_dir_all(&ws);
        let output = result?;
        let status = output.status.code();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if status == Some(0) && stdout.trim_end() == marker {
            Ok(())
        } else {
            Err(format!(
                "exit {status:?}, stdout {:?}, stderr {:?}",
                truncate_str(&stdout, 200),
                truncate_str(&String::from_utf8_lossy(&output.stderr), 400)
            ))
        }
    }
}

/// How long one probe may take before the mode is taken as unavailable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Probes the sandbox with the trampoline next to the running binary ([`Trampoline::locate`]).
pub fn probe() -> SandboxMode {
    Sandbox::detect(Trampoline::locate()).mode()
}

/// Wall-clock times of the same command run `iterations` times sandboxed and unsandboxed.
#[derive(Clone, Debug, Default)]
pub struct ExecTimings {
    pub sandboxed: Vec<Duration>,
    pub plain: Vec<Duration>,
}

/// Benchmark helper: times `argv` under `sandbox` and plainly (no assertions; for reports).
pub async fn time_exec(
    sandbox: &Sandbox,
    argv: &[String],
    workspace: &Path,
    iterations: usize,
) -> Result<ExecTimings, ExecError> {
    let cancel = CancellationToken::new();
    let limits = ProcessLimits::default();
    let req = ExecRequest {
        argv,
        workspace,
        env: &[],
        limits: &limits,
        timeout: Duration::from_secs(30),
        max_output_bytes: 64 << 10,
        cancel: &cancel,
    };
    let mut timings = ExecTimings::default();
    for _ in 0..iterations {
        let start = Instant::now();
        sandbox.run(&req).await?;
        timings.sandboxed.push(start.elapsed());
        let start = Instant::now();
        Sandbox::run_unsandboxed(&req).await?;
        timings.plain.push(start.elapsed());
    }
    Ok(timings)
}

/// A fresh private directory under the system temp dir (`create_dir` fails if it exists, so a
/// name taken by someone else is never reused).
fn per_run_tmp() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..16 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("sb-sandbox-{}-{n}-{nanos:x}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

fn truncate_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Waits for a std child in a helper thread, so a hung probe cannot hang the caller.
pub(crate) fn wait_with_deadline(
    child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(format!("wait: {e}")),
        Err(_) => {
            process::kill_group(pid);
            Err(format!("no answer within {timeout:?}"))
        }
    }
}
