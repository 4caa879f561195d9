//! Spawning a sandboxed command in a process group of its own, reading its output with a cap
//! (the rest is read and dropped, so worker memory stays bounded whatever the command prints),
//! and killing the whole group on timeout or cancellation.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{ExecRequest, trampoline};

/// How long the output readers may still run after the process group was killed or exited
/// (they stop at end of file, which comes as soon as every holder of the pipes is gone).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The first bytes of a stream, and how many it had in all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedOutput {
    pub bytes: Vec<u8>,
    pub total_bytes: u64,
}

impl CappedOutput {
    pub fn truncated(&self) -> bool {
        self.total_bytes > self.bytes.len() as u64
    }
}

/// What a finished (or killed) command left.
#[derive(Clone, Debug, Default)]
pub struct ExecOutput {
    /// The exit code, when it exited (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
    /// The spawned process (bwrap, or the trampoline that became the command): also the id of
    /// its process group.
    pub pid: u32,
    pub elapsed: Duration,
}

/// Why a command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no command sandbox is available on this machine")]
    Unavailable,
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    #[error("could not start the sandbox: {0}")]
    Spawn(#[source] std::io::Error),
    /// The wall-clock limit passed; the group was killed. Holds the output read until then.
    #[error("timed out")]
    TimedOut(Box<ExecOutput>),
    /// The cancellation token fired; the group was killed.
    #[error("cancelled")]
    Cancelled(Box<ExecOutput>),
}

enum Ended {
    Exited(Option<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

/// Runs `cmd` (already holding its program, arguments, environment and cwd) under the request's
/// timeout, output cap and cancellation token.
pub(crate) async fn run_command(
    mut cmd: std::process::Command,
    req: &ExecRequest<'_>,
) -> Result<ExecOutput, ExecError> {
    if req.cancel.is_cancelled() {
        return Err(ExecError::Cancelled(Box::default()));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    // Should this future be dropped, the direct child is killed (and, through the guard below,
    // its group); bwrap's --die-with-parent and its pid namespace take the rest with it.
    cmd.kill_on_drop(true);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
    let pid = child.id().unwrap_or(0);
    // Should this future be dropped mid-run (the caller gave up on it), the group goes too.
    let mut guard = KillGroupOnDrop(Some(pid));
    let stop = CancellationToken::new();
    let cap = req.max_output_bytes;
    let stdout = tokio::spawn(read_capped(child.stdout.take(), cap, stop.clone()));
    let stderr = tokio::spawn(read_capped(child.stderr.take(), cap, stop.clone()));

    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status.ok()),
        () = tokio::time::sleep(req.timeout) => Ended::TimedOut,
        () = req.cancel.cancelled() => Ended::Cancelled,
    };
    // The whole group goes: all of it on timeout or cancel, stragglers after a normal exit. (The
    // kernel does not reuse a group id as a pid while a member lives; once the group is empty the
    // kill finds nothing, short of a new process taking the id and leading a group of its own in
    // the microseconds between the reap above and this call.)
    kill_group(pid);
    guard.0 = None;
    let status = match ended {
        Ended::Exited(status) => status,
        Ended::TimedOut | Ended::Cancelled => child.wait().await.ok(),
    };
    // The readers end at end of file, or when `stop` fires after the grace period.
    let stopper = tokio::spawn({
        let stop = stop.clone();
        async move {
            tokio::time::sleep(OUTPUT_GRACE).await;
            stop.cancel();
        }
    });
    let (stdout, stderr) = tokio::join!(stdout, stderr);
    stopper.abort();
    let output = ExecOutput {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout: stdout.unwrap_or_default(),
        stderr: stderr.unwrap_or_default(),
        pid,
        elapsed: start.elapsed(),
    };
    match ended {
        Ended::TimedOut => Err(ExecError::TimedOut(Box::new(output))),
        Ended::Cancelled => Err(ExecError::Cancelled(Box::new(output))),
        Ended::Exited(_) => match trampoline::setup_failure(&output) {
            Some(why) => Err(ExecError::Setup(why)),
            None => Ok(output),
        },
    }
}

/// Reads `reader` to its end (or until `stop`), keeping the first `cap` bytes.
async fn read_capped(
    reader: Option<impl AsyncRead + Unpin>,
    cap: usize,
    stop: CancellationToken,
) -> CappedOutput {
    let mut out = CappedOutput::default();
    let Some(mut reader) = reader else {
        return out;
    };
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            n = reader.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        out.total_bytes += n as u64;
        let room = cap.saturating_sub(out.bytes.len());
        out.bytes.extend_from_slice(&buf[..n.min(room)]);
    }
    out
}

/// Blocking run for the start-up probe, killed after `timeout`.
pub(crate) fn run_blocking(
    mut cmd: std::process::Command,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
    super::wait_with_deadline(child, timeout)
}

/// Kills the group if dropped while still armed (before the run's own kill).
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid);
        }
    }
}

/// SIGKILL to the process group `pgid` (errors, such as an already empty group, are ignored).
pub(crate) fn kill_group(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    // Never 0 or 1: "our own group" and init are not what a caller means.
    if raw <= 1 {
        return;
    }
    if let Some(pid) = Pid::from_raw(raw) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}
