//! The file tools against `..`, absolute paths, symlinks and hard links that leave the
//! workspace, and the quota. They run in the worker, so no sandbox is needed (and none is used).

use std::os::unix::fs::symlink;

use sb_agent_worker::sandbox::SandboxMode;
use sb_agent_worker::tools::{ToolErrorCode, ToolLimits, ToolOutcome};
use serde_json::json;

use crate::support::{Fixture, SECRET, code, exists, output};

fn fixture() -> Fixture {
    Fixture::new(SandboxMode::Unavailable)
}

#[tokio::test]
async fn round_trip_inside_the_workspace() {
    let f = fixture();
    let wrote = f
        .call(
            "write_file",
            json!({"path": "src/deep/a.txt", "content": "hello"}),
        )
        .await;
    assert_eq!(output(&wrote), "wrote 5 bytes to src/deep/a.txt");
    f.call(
        "append_file",
        json!({"path": "src/deep/a.txt", "content": " world"}),
    )
    .await;
    let read = f
        .call("read_file", json!({"path": "./src//deep/a.txt"}))
        .await;
    assert_eq!(output(&read), "hello world");
    let listing = output(&f.call("list_files", json!({"recursive": true})).await);
    assert_eq!(listing, "src/\nsrc/deep/\nsrc/deep/a.txt  11\n");
    // A symlink that stays inside is followed.
    symlink("src/deep/a.txt", f.workspace.join("alias")).unwrap();
    assert_eq!(
        output(&f.call("read_file", json!({"path": "alias"})).await),
        "hello world"
    );
    assert_eq!(
        output(
            &f.call("delete_file", json!({"path": "src/deep/a.txt"}))
                .await
        ),
        "deleted src/deep/a.txt"
    );
    assert_eq!(
        code(&f.call("read_file", json!({"path": "src/deep/a.txt"})).await),
        ToolErrorCode::NotFound
    );
    // OpenAI sends the arguments as a JSON string.
    let as_string = json!(r#"{"path": "src/deep"}"#);
    assert_eq!(
        output(&f.call("delete_file", as_string).await),
        "deleted src/deep"
    );
}

#[tokio::test]
async fn dot_dot_and_absolute_paths_are_refused() {
    let f = fixture();
    for path in [
        "../outside/secret.txt",
        "src/../../outside/secret.txt",
        "/etc/passwd",
        "..",
    ] {
        for (tool, args) in [
            ("read_file", json!({"path": path})),
            ("list_files", json!({"path": path})),
            ("write_file", json!({"path": path, "content": "x"})),
            ("append_file", json!({"path": path, "content": "x"})),
            ("delete_file", json!({"path": path})),
        ] {
            let outcome = f.call(tool, args).await;
            assert_eq!(
                code(&outcome),
                ToolErrorCode::PathOutsideWorkspace,
                "{tool} {path}"
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        SECRET
    );
}

#[tokio::test]
async fn symlinks_that_leave_the_workspace_are_refused() {
    let f = fixture();
    symlink("/etc", f.workspace.join("etc")).unwrap();
    symlink(f.outside.join("secret.txt"), f.workspace.join("abs-secret")).unwrap();
    symlink("../outside", f.workspace.join("rel-outside")).unwrap();
    std::fs::create_dir(f.workspace.join("sub")).unwrap();
    symlink("../../outside/secret.txt", f.workspace.join("sub/climb")).unwrap();
    let attempts = [
        ("read_file", json!({"path": "etc/passwd"})),
        ("read_file", json!({"path": "abs-secret"})),
        ("read_file", json!({"path": "rel-outside/secret.txt"})),
        ("read_file", json!({"path": "sub/climb"})),
        ("list_files", json!({"path": "rel-outside"})),
        ("list_files", json!({"path": "etc"})),
        (
            "write_file",
            json!({"path": "abs-secret", "content": "pwned"}),
        ),
        (
            "write_file",
            json!({"path": "rel-outside/new.txt", "content": "pwned"}),
        ),
        (
            "append_file",
            json!({"path": "sub/climb", "content": "pwned"}),
        ),
        (
            "write_file",
            json!({"path": "rel-outside/made/by/mkdir.txt", "content": "x"}),
        ),
        ("delete_file", json!({"path": "rel-outside/secret.txt"})),
    ];
    for (tool, args) in attempts {
        let outcome = f.call(tool, args.clone()).await;
        assert_eq!(
            code(&outcome),
            ToolErrorCode::PathOutsideWorkspace,
            "{tool} {args}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        SECRET
    );
    assert!(!exists(&f.outside.join("new.txt")));
    assert!(!exists(&f.outside.join("made")));
    // Deleting the link itself is fine: the target stays.
    output(&f.call("delete_file", json!({"path": "abs-secret"})).await);
    assert!(exists(&f.outside.join("secret.txt")));
    // A recursive listing shows links without following them.
    let listing = output(&f.call("list_files", json!({"recursive": true})).await);
    assert!(listing.contains("etc -> /etc\n"), "{listing}");
    assert!(!listing.contains("passwd"), "{listing}");
}

/// A symlink swapped between "inside" and "/etc" while reads go through it (the
/// check-then-use race): every read gets the inside file or a refusal, never the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_during_resolution_never_leads_out() {
    let f = fixture();
    std::fs::create_dir(f.workspace.join("inside")).unwrap();
    std::fs::write(f.workspace.join("inside/passwd"), "inside").unwrap();
    let ws = f.workspace.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let target = if i.is_multiple_of(2) {
                    "inside"
                } else {
                    "/etc"
                };
                let tmp = ws.join(format!("d.{i}"));
                symlink(target, &tmp).unwrap();
                std::fs::rename(&tmp, ws.join("d")).unwrap();
                i += 1;
            }
        }
    });
    let (mut inside, mut refused) = (0, 0);
    for _ in 0..500 {
        match f.call("read_file", json!({"path": "d/passwd"})).await {
            ToolOutcome::Ok { output, .. } => {
                assert_eq!(output, "inside");
                inside += 1;
            }
            ToolOutcome::Failed(failure) => {
                assert!(
                    matches!(
                        failure.code,
                        ToolErrorCode::PathOutsideWorkspace | ToolErrorCode::NotFound
                    ),
                    "{failure:?}"
                );
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    println!("{inside} reads inside, {refused} refused");
    assert_eq!(inside + refused, 500);
}

#[tokio::test]
async fn a_hard_link_to_a_file_outside_is_refused() {
    let f = fixture();
    // Same file system (one temp dir), so the link can be made by someone with host access.
    std::fs::hard_link(f.outside.join("secret.txt"), f.workspace.join("linked")).unwrap();
    for (tool, args) in [
        ("read_file", json!({"path": "linked"})),
        ("write_file", json!({"path": "linked", "content": "pwned"})),
        ("append_file", json!({"path": "linked", "content": "pwned"})),
    ] {
        assert_eq!(
            code(&f.call(tool, args).await),
            ToolErrorCode::PathOutsideWorkspace,
            "{tool}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        SECRET
    );
}

#[tokio::test]
async fn git_internals_cannot_be_written() {
    let f = fixture();
    for path in [".git/config", "sub/.git/hooks/pre-commit", ".GIT/config"] {
        let outcome = f
            .call(
                "write_file",
                json!({"path": path, "content": "[alias]\n x = !sh"}),
            )
            .await;
        assert_eq!(code(&outcome), ToolErrorCode::ArgumentNotAllowed, "{path}");
    }
    assert!(!exists(&f.workspace.join(".git")));
}

/// A symlink inside the workspace is followed by reads only: writes, appends and deletions
/// refuse it, so a link to `.git` cannot route a write to its config.
#[tokio::test]
async fn writes_never_follow_symlinks() {
    let f = fixture();
    std::fs::create_dir_all(f.workspace.join(".git")).unwrap();
    std::fs::write(f.workspace.join(".git/config"), "[core]\n").unwrap();
    symlink(".git", f.workspace.join("gitdir")).unwrap();
    std::fs::write(f.workspace.join("real.txt"), "real").unwrap();
    symlink("real.txt", f.workspace.join("alias.txt")).unwrap();
    for (tool, args) in [
        (
            "write_file",
            json!({"path": "gitdir/config", "content": "[alias]\n x = !sh"}),
        ),
        (
            "append_file",
            json!({"path": "gitdir/config", "content": "[alias]\n x = !sh"}),
        ),
        (
            "write_file",
            json!({"path": "gitdir/hooks/pre-commit", "content": "#!/bin/sh"}),
        ),
        ("delete_file", json!({"path": "gitdir/config"})),
        (
            "write_file",
            json!({"path": "alias.txt", "content": "changed"}),
        ),
    ] {
        let outcome = f.call(tool, args.clone()).await;
        assert_eq!(
            code(&outcome),
            ToolErrorCode::PathOutsideWorkspace,
            "{tool} {args}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(f.workspace.join(".git/config")).unwrap(),
        "[core]\n"
    );
    assert_eq!(
        std::fs::read_to_string(f.workspace.join("real.txt")).unwrap(),
        "real"
    );
    assert_eq!(
        output(&f.call("read_file", json!({"path": "gitdir/config"})).await),
        "[core]\n"
    );
}

#[tokio::test]
async fn special_files_are_refused() {
    let f = fixture();
    std::fs::create_dir(f.workspace.join("dir")).unwrap();
    assert_eq!(
        code(&f.call("read_file", json!({"path": "dir"})).await),
        ToolErrorCode::NotARegularFile
    );
    assert_eq!(
        code(&f.call("read_file", json!({"path": "missing"})).await),
        ToolErrorCode::NotFound
    );
    assert_eq!(
        code(&f.call("delete_file", json!({"path": ""})).await),
        ToolErrorCode::InvalidArguments
    );
    assert_eq!(
        code(&f.call("read_file", json!({"nope": 1})).await),
        ToolErrorCode::InvalidArguments
    );
    assert_eq!(
        code(&f.call("rm", json!({})).await),
        ToolErrorCode::UnknownTool
    );
}

#[tokio::test]
async fn long_files_are_read_in_capped_pieces() {
    let limits = ToolLimits {
        max_output_bytes: 1000,
        ..ToolLimits::default()
    };
    let f = Fixture::with_limits(SandboxMode::Unavailable, limits);
    std::fs::write(f.workspace.join("big"), "x".repeat(2500)).unwrap();
    let first = f.call("read_file", json!({"path": "big"})).await;
    let ToolOutcome::Ok {
        output, truncated, ..
    } = first
    else {
        panic!("{first:?}")
    };
    assert!(truncated);
    assert!(output.starts_with(&"x".repeat(1000)));
    assert!(output.ends_with("[truncated: bytes 0..1000 of 2500; read on with offset 1000]"));
    let last = f
        .call("read_file", json!({"path": "big", "offset": 2000}))
        .await;
    assert_eq!(last, ToolOutcome::ok("x".repeat(500), false));
}

/// The "1 GB write past the quota", scaled down: the quota is 1 MiB and the write is 2 MiB,
/// then appends creep up to it. Nothing past the quota is ever written.
#[tokio::test]
async fn writes_past_the_quota_are_refused_before_writing() {
    let limits = ToolLimits {
        workspace_quota_bytes: 1 << 20,
        ..ToolLimits::default()
    };
    let f = Fixture::with_limits(SandboxMode::Unavailable, limits);
    let big = "x".repeat(2 << 20);
    let outcome = f
        .call("write_file", json!({"path": "big", "content": big}))
        .await;
    assert_eq!(code(&outcome), ToolErrorCode::QuotaExceeded);
    assert!(!exists(&f.workspace.join("big")), "nothing written");

    let chunk = "y".repeat(300 << 10);
    let mut appended = 0;
    loop {
        let outcome = f
            .call("append_file", json!({"path": "log", "content": chunk}))
            .await;
        match outcome.error_code() {
            None => appended += 1,
            Some(ToolErrorCode::QuotaExceeded) => break,
            Some(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(appended, 3, "3 × 300 KiB fit in 1 MiB, a fourth does not");
    let size = std::fs::metadata(f.workspace.join("log")).unwrap().len();
    assert_eq!(size, 3 * (300 << 10));
    // Rewriting a file counts its new size, not old + new.
    output(
        &f.call("write_file", json!({"path": "log", "content": "small"}))
            .await,
    );
    assert_eq!(std::fs::metadata(f.workspace.join("log")).unwrap().len(), 5);
}

#[tokio::test]
async fn file_size_limit_applies_to_the_file_tools() {
    let limits = ToolLimits {
        max_file_size_bytes: 1000,
        ..ToolLimits::default()
    };
    let f = Fixture::with_limits(SandboxMode::Unavailable, limits);
    let outcome = f
        .call(
            "write_file",
            json!({"path": "f", "content": "z".repeat(1001)}),
        )
        .await;
    assert_eq!(code(&outcome), ToolErrorCode::FileTooLarge);
}
