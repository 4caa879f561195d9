//! Output caps, timeouts, cancellation and the quota through the bash tool; the probe and the
//! benchmark helper.

use std::time::{Duration, Instant};

use sb_agent_worker::sandbox::{self, Sandbox, SandboxMode, Trampoline, time_exec};
use sb_agent_worker::tools::{ToolErrorCode, ToolLimits, ToolOutcome};
use serde_json::json;

use crate::in_both_modes;
use crate::support::{Fixture, code, output, processes_with, trampoline};

/// 100 MB of output: the tool returns the first `max_output_bytes`, flagged, and the worker
/// never holds more than that (it reads and drops the rest).
async fn huge_output_is_truncated(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let before = peak_rss_kib();
    let outcome = f.bash("head -c 100000000 /dev/zero").await;
    let ToolOutcome::Ok {
        output,
        truncated,
        exit_code,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert!(truncated);
    assert_eq!(exit_code, Some(0));
    let cap = ToolLimits::default().max_output_bytes;
    assert!(output.len() <= cap + 200, "{}", output.len());
    assert!(output.ends_with("[output truncated: 100000000 bytes of stdout, 0 of stderr in all]"));
    // The peak resident size of this whole test process grew by far less than 100 MB.
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 32 << 10, "peak RSS grew by {grown} KiB");
}
in_both_modes!(huge_output, huge_output_is_truncated);

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_until_gone(needle: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = processes_with(needle);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `sleep 30` at a 1 s timeout: killed, reported `timeout`, nothing left running.
async fn timeout_kills_the_command(mode: SandboxMode) {
    let limits = ToolLimits {
        timeout: Duration::from_secs(1),
        ..ToolLimits::default()
    };
    let f = Fixture::with_limits(mode, limits);
    let needle = match mode {
        SandboxMode::Bubblewrap => "30.0101",
        _ => "30.0202",
    };
    let outcome = f.bash(&format!("sleep {needle}")).await;
    assert_eq!(code(&outcome), ToolErrorCode::Timeout);
    let left = wait_until_gone(needle).await;
    assert!(left.is_empty(), "still running: {left:?}");
}
in_both_modes!(timeout, timeout_kills_the_command);

/// Cancelling the run's token kills the command within a second.
async fn cancel_kills_within_a_second(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let needle = match mode {
        SandboxMode::Bubblewrap => "31.0101",
        _ => "31.0202",
    };
    let cancel = f.ctx.cancel.clone();
    let cancelled_at = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        Instant::now()
    });
    let outcome = f.bash(&format!("sleep {needle}")).await;
    let returned = Instant::now();
    let cancelled_at = cancelled_at.await.unwrap();
    assert_eq!(code(&outcome), ToolErrorCode::Cancelled);
    assert!(returned.duration_since(cancelled_at) < Duration::from_secs(1));
    let left = wait_until_gone(needle).await;
    assert!(left.is_empty(), "still running: {left:?}");
    // A cancelled context refuses further calls.
    assert_eq!(
        code(&f.call("list_files", json!({})).await),
        ToolErrorCode::Cancelled
    );
}
in_both_modes!(cancel, cancel_kills_within_a_second);

/// A command can write past the quota (bounded per file by RLIMIT_FSIZE); it is reported
/// afterwards and every later write is refused until files are deleted.
#[tokio::test]
async fn bash_writes_past_the_quota_are_reported_and_block_later_writes() {
    let limits = ToolLimits {
        workspace_quota_bytes: 3 << 20,
        ..ToolLimits::default()
    };
    let f = Fixture::with_limits(SandboxMode::Bubblewrap, limits);
    let input = "line\n".repeat((2 << 20) / 5);
    output(
        &f.call("write_file", json!({"path": "input", "content": input}))
            .await,
    );
    let outcome = f.bash("sort -o sorted input").await;
    assert_eq!(code(&outcome), ToolErrorCode::QuotaExceeded);
    assert_eq!(code(&f.bash("ls").await), ToolErrorCode::QuotaExceeded);
    let small = f
        .call("write_file", json!({"path": "x", "content": "x"}))
        .await;
    assert_eq!(code(&small), ToolErrorCode::QuotaExceeded);
    output(&f.call("delete_file", json!({"path": "sorted"})).await);
    assert_eq!(output(&f.bash("ls").await), "input\n");
}

#[test]
fn probe_finds_bubblewrap_here() {
    // The trampoline is found next to the test binary's directory (target/*/agent-sandbox-exec).
    assert_eq!(sandbox::probe(), SandboxMode::Bubblewrap);
}

#[test]
fn the_probe_fails_closed() {
    assert_eq!(Sandbox::detect(None).mode(), SandboxMode::Unavailable);
    let missing = Trampoline::new("/nonexistent/agent-sandbox-exec");
    assert_eq!(
        Sandbox::detect(Some(missing)).mode(),
        SandboxMode::Unavailable
    );
    // A "trampoline" that exits 0 without running anything, as bwrap sometimes does when it
    // fails: the missing marker gives it away.
    let silent = Trampoline::new("/usr/bin/true");
    assert_eq!(
        Sandbox::detect(Some(silent)).mode(),
        SandboxMode::Unavailable
    );
}

#[tokio::test]
async fn benchmark_helper_times_both_ways() {
    let f = Fixture::new(SandboxMode::Bubblewrap);
    let sandbox = Sandbox::detect_bubblewrap(Some(trampoline()));
    let timings = time_exec(&sandbox, &["true".to_string()], &f.workspace, 3)
        .await
        .unwrap();
    assert_eq!(timings.sandboxed.len(), 3);
    assert_eq!(timings.plain.len(), 3);
    println!(
        "sandboxed {:?}, plain {:?}",
        timings.sandboxed, timings.plain
    );
}
