//! What a command could reach if it got past the allow-list: each test runs the attack straight
//! through the sandbox (and through the bash tool where the policy lets it through), in both the
//! bubblewrap and the Landlock fallback mode, and shows it is contained.

use std::os::unix::fs::symlink;
use std::time::Duration;

use sb_agent_worker::sandbox::{ProcessLimits, SandboxMode};
use sb_agent_worker::tools::ToolOutcome;

use crate::in_both_modes;
use crate::support::{Fixture, SECRET, exists, output, processes_with, text};

async fn host_secrets_are_unreadable(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let secret_path = f.outside.join("secret.txt");
    let worker_environ = format!("/proc/{}/environ", std::process::id());
    for path in [
        "/etc/shadow",
        "/etc/passwd",
        "/root/.bashrc",
        &worker_environ,
    ] {
        let out = f.raw(&["cat", path]).await.unwrap();
        assert_ne!(
            out.exit_code,
            Some(0),
            "{path}: {}",
            text(&out.stdout.bytes)
        );
        assert!(out.stdout.bytes.is_empty(), "{path}");
    }
    let out = f
        .raw(&["cat", secret_path.to_str().unwrap()])
        .await
        .unwrap();
    assert!(!text(&out.stdout.bytes).contains(SECRET));
    // Through the bash tool: links in the workspace that point out are allowed by the argument
    // rules (they are plain relative paths) and contained by the sandbox.
    symlink("/etc", f.workspace.join("etc")).unwrap();
    symlink("../outside", f.workspace.join("rel-outside")).unwrap();
    symlink(&secret_path, f.workspace.join("abs-secret")).unwrap();
    for command in [
        "cat etc/shadow",
        "cat rel-outside/secret.txt",
        "cat abs-secret",
    ] {
        let ToolOutcome::Ok {
            output, exit_code, ..
        } = f.bash(command).await
        else {
            panic!("{command}")
        };
        assert_ne!(exit_code, Some(0), "{command}: {output}");
        assert!(!output.contains(SECRET), "{command}: {output}");
        if !shadow.is_empty() {
            assert!(
                !output.contains(shadow.lines().next().unwrap_or("x")),
                "{command}"
            );
        }
    }
}
in_both_modes!(host_secrets, host_secrets_are_unreadable);

async fn the_environment_is_minimal(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let out = f.raw(&["cat", "/proc/self/environ"]).await.unwrap();
    if mode == SandboxMode::Landlock {
        // /proc is not reachable at all under Landlock; ask the program that inherits it.
        assert_ne!(out.exit_code, Some(0));
    }
    let out = f
        .raw(&["bash", "-c", "export -p | cut -d= -f1"])
        .await
        .unwrap();
    let mut names: Vec<String> = text(&out.stdout.bytes)
        .lines()
        .map(|l| l.trim_start_matches("declare -x ").to_string())
        .filter(|n| !["OLDPWD", "PWD", "SHLVL", "_"].contains(&n.as_str()))
        .collect();
    names.sort();
    let expected: &[&str] = match mode {
        SandboxMode::Landlock => &["HOME", "LANG", "PATH", "TMPDIR"],
        _ => &["HOME", "LANG", "PATH"],
    };
    assert_eq!(names, expected);
}
in_both_modes!(minimal_environment, the_environment_is_minimal);

/// The worker's own environment (here: a fake secret given to a child copy of this test binary)
/// never reaches a command, by `/proc/self/environ`, `/proc/1/environ` or the worker's pid.
async fn worker_secret_does_not_leak(mode: SandboxMode) {
    let exe = std::env::current_exe().unwrap();
    let name = format!("sandbox_escapes::secret_probe::{}", mode.as_str());
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            &name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SB_FAKE_SECRET", "sk-fake-worker-secret-1234")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("1 passed"), "{stdout}");
}
in_both_modes!(worker_secret, worker_secret_does_not_leak);

mod secret_probe {
    use super::*;

    /// Run by `worker_secret` with SB_FAKE_SECRET set; does nothing otherwise.
    async fn probe(mode: SandboxMode) {
        let Ok(secret) = std::env::var("SB_FAKE_SECRET") else {
            return;
        };
        let f = Fixture::new(mode);
        let worker = format!("/proc/{}/environ", std::process::id());
        let parent = format!("/proc/{}/environ", std::os::unix::process::parent_id());
        for path in ["/proc/self/environ", "/proc/1/environ", &worker, &parent] {
            let out = f.raw(&["cat", path]).await.unwrap();
            let seen = text(&out.stdout.bytes) + &text(&out.stderr.bytes);
            assert!(!seen.contains(&secret), "{path}: {seen}");
        }
        let out = f.raw(&["bash", "-c", "export -p"]).await.unwrap();
        assert!(!text(&out.stdout.bytes).contains(&secret));
    }

    #[tokio::test]
    #[ignore = "run by worker_secret with a fake secret in its environment"]
    async fn bubblewrap() {
        probe(SandboxMode::Bubblewrap).await;
    }

    #[tokio::test]
    #[ignore = "run by worker_secret with a fake secret in its environment"]
    async fn landlock() {
        probe(SandboxMode::Landlock).await;
    }
}

/// No network: a TCP connection to a listener of the host's loopback fails (bubblewrap: an
/// empty network namespace; Landlock: seccomp refuses the socket).
async fn network_is_unreachable(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let out = f.raw(&["bash", "-c", &script]).await.unwrap();
    assert_ne!(out.exit_code, Some(0));
    assert!(!text(&out.stdout.bytes).contains("connected"));
    assert!(listener.accept().is_err(), "a connection reached the host");
    let out = f.raw(&["cat", "/proc/net/dev"]).await.unwrap();
    let interfaces: Vec<String> = text(&out.stdout.bytes)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    match mode {
        SandboxMode::Bubblewrap => assert_eq!(interfaces, ["lo"]),
        _ => assert_ne!(out.exit_code, Some(0), "{interfaces:?}"),
    }
}
in_both_modes!(network, network_is_unreachable);

/// Writes anywhere but the workspace (and the sandbox's own /tmp) do not reach the host.
async fn the_host_is_read_only(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let outside = f.outside.join("pwned");
    let script = format!(
        "echo x > /usr/pwned; echo x > /pwned; echo x > {}; echo x > /work/ok; echo x > ok2",
        outside.display()
    );
    f.raw(&["bash", "-c", &script]).await.unwrap();
    assert!(!exists(std::path::Path::new("/usr/pwned")));
    assert!(!exists(std::path::Path::new("/pwned")));
    assert!(!exists(&outside));
    assert!(
        exists(&f.workspace.join("ok2")),
        "the workspace is writable"
    );
}
in_both_modes!(read_only_host, the_host_is_read_only);

/// The rlimits reach the command: CPU, memory, file size, open files and processes.
async fn rlimits_apply(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let limits = ProcessLimits {
        cpu_seconds: 7,
        memory_bytes: 512 << 20,
        file_size_bytes: 1 << 20,
        open_files: 64,
        processes: 32,
        tmp_bytes: 1 << 20,
    };
    let out = f
        .raw_with(
            &[
                "bash",
                "-c",
                "ulimit -t; ulimit -v; ulimit -n; ulimit -u; ulimit -H -t",
            ],
            &limits,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(text(&out.stdout.bytes), "7\n524288\n64\n32\n8\n");
    // A file write past RLIMIT_FSIZE stops at the limit (SIGXFSZ).
    let out = f
        .raw_with(
            &["bash", "-c", "head -c 50000000 /dev/zero > big"],
            &limits,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, Some(0));
    assert_eq!(
        std::fs::metadata(f.workspace.join("big")).unwrap().len(),
        1 << 20
    );
}
in_both_modes!(rlimits, rlimits_apply);

/// A fork bomb (bounded, so a failure cannot take the machine down): RLIMIT_NPROC stops it where
/// the kernel enforces it (not for uid 0, which it exempts), and the timeout's group kill (and
/// under bubblewrap the pid namespace) leaves no process behind either way.
async fn fork_bomb_is_contained(mode: SandboxMode) {
    let f = Fixture::new(mode);
    let limits = ProcessLimits {
        processes: 16,
        ..ProcessLimits::default()
    };
    let script = "for i in $(seq 1 200); do sleep 30.4242 & done; wait";
    let result = f
        .raw_with(&["bash", "-c", script], &limits, Duration::from_secs(2))
        .await;
    let running_as_root = rustix::process::getuid().is_root();
    if !running_as_root && let Ok(out) = &result {
        assert!(text(&out.stderr.bytes).contains("fork"), "{out:?}");
    }
    let mut left = processes_with("30.4242");
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_with("30.4242");
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}
in_both_modes!(fork_bomb, fork_bomb_is_contained);

/// The tool refuses /proc/self/limits as an argument, so read the limits the tool applies
/// through the same raw path with the tool's own limits.
#[tokio::test]
async fn bubblewrap_proc_shows_only_the_sandbox() {
    let f = Fixture::new(SandboxMode::Bubblewrap);
    let out = f.raw(&["ls", "/proc"]).await.unwrap();
    let pids: Vec<String> = text(&out.stdout.bytes)
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    assert!(
        pids.len() <= 3,
        "only the sandbox's own processes: {pids:?}"
    );
    let out = f.raw(&["cat", "/proc/self/limits"]).await.unwrap();
    let limits = text(&out.stdout.bytes);
    assert!(limits.contains("Max processes             64"), "{limits}");
    let out = f.raw(&["ls", "/"]).await.unwrap();
    let root: Vec<String> = text(&out.stdout.bytes)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        root,
        [
            "bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr", "work"
        ]
    );
    let out = f.raw(&["ls", "/etc"]).await.unwrap();
    assert_eq!(text(&out.stdout.bytes), "ld.so.cache\n");
    assert_eq!(output(&f.bash("echo ok").await), "ok\n");
}
