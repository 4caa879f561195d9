//! Shared fixtures: a workspace with a secret file beside it (outside), the sandbox of each mode
//! probed once, and a tool context.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sb_agent_worker::sandbox::{
    ExecError, ExecOutput, ExecRequest, ProcessLimits, Sandbox, SandboxMode, Trampoline,
};
use sb_agent_worker::tools::{
    CommandPolicy, ToolCall, ToolContext, ToolErrorCode, ToolLimits, ToolOutcome, execute,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "the-secret-outside-the-workspace";

pub fn trampoline() -> Trampoline {
    Trampoline::new(env!("CARGO_BIN_EXE_agent-sandbox-exec"))
}

/// The sandbox of `mode`, probed once per test binary. Both modes are required on the machines
/// the tests run on (scripts/test installs bubblewrap; the kernel must have Landlock).
pub fn sandbox(mode: SandboxMode) -> Sandbox {
    static BWRAP: OnceLock<Sandbox> = OnceLock::new();
    static LANDLOCK: OnceLock<Sandbox> = OnceLock::new();
    let sandbox = match mode {
        SandboxMode::Bubblewrap => {
            BWRAP.get_or_init(|| Sandbox::detect_bubblewrap(Some(trampoline())))
        }
        SandboxMode::Landlock => {
            LANDLOCK.get_or_init(|| Sandbox::detect_landlock(Some(trampoline())))
        }
        SandboxMode::Unavailable => return Sandbox::unavailable(),
    };
    assert_eq!(
        sandbox.mode(),
        mode,
        "the {} sandbox does not work here (bubblewrap needs user namespaces; Landlock needs \
         Linux 5.13+ with it enabled)",
        mode.as_str()
    );
    sandbox.clone()
}

/// A workspace, and beside it (outside) a directory holding `secret.txt`.
pub struct Fixture {
    /// Holds the directories until the test ends.
    _root: tempfile::TempDir,
    pub workspace: PathBuf,
    pub outside: PathBuf,
    pub ctx: ToolContext,
}

impl Fixture {
    pub fn new(mode: SandboxMode) -> Self {
        Self::with_limits(mode, ToolLimits::default())
    }

    pub fn with_limits(mode: SandboxMode, limits: ToolLimits) -> Self {
        let root = tempfile::tempdir().unwrap();
        let workspace = root.path().join("ws");
        let outside = root.path().join("outside");
        std::fs::create_dir(&workspace).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        let ctx = ToolContext {
            workspace: workspace.clone(),
            limits,
            cancel: CancellationToken::new(),
            sandbox: sandbox(mode),
            commands: Arc::new(CommandPolicy::default()),
        };
        Self {
            _root: root,
            workspace,
            outside,
            ctx,
        }
    }

    pub async fn call(&self, name: &str, arguments: serde_json::Value) -> ToolOutcome {
        let call = ToolCall {
            name: name.to_string(),
            arguments,
        };
        execute(&call, &self.ctx).await
    }

    pub async fn bash(&self, command: &str) -> ToolOutcome {
        self.call("bash", json!({ "command": command })).await
    }

    /// Runs `argv` straight through the sandbox, past the tool's command policy: what a command
    /// could do if it found a way around the allow-list.
    pub async fn raw(&self, argv: &[&str]) -> Result<ExecOutput, ExecError> {
        self.raw_with(argv, &ProcessLimits::default(), Duration::from_secs(20))
            .await
    }

    pub async fn raw_with(
        &self,
        argv: &[&str],
        limits: &ProcessLimits,
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let cancel = CancellationToken::new();
        let req = ExecRequest {
            argv: &argv,
            workspace: &self.workspace,
            env: &[],
            limits,
            timeout,
            max_output_bytes: 1 << 20,
            cancel: &cancel,
        };
        self.ctx.sandbox.run(&req).await
    }
}

/// The error code, failing the test with the outcome if it succeeded.
pub fn code(outcome: &ToolOutcome) -> ToolErrorCode {
    outcome
        .error_code()
        .unwrap_or_else(|| panic!("expected a refusal, got {outcome:?}"))
}

/// The output of a successful call.
pub fn output(outcome: &ToolOutcome) -> String {
    match outcome {
        ToolOutcome::Ok { output, .. } => output.clone(),
        ToolOutcome::Failed(f) => panic!("expected success, got {f:?}"),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Pids of live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty cmdline; it holds no resources but its pid.
        if cmdline.contains(needle) {
            found.push(pid);
        }
    }
    found
}

pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Runs the same async test body for both sandbox modes.
#[macro_export]
macro_rules! in_both_modes {
    ($name:ident, $body:ident) => {
        mod $name {
            use sb_agent_worker::sandbox::SandboxMode;

            #[tokio::test]
            async fn bubblewrap() {
                super::$body(SandboxMode::Bubblewrap).await;
            }

            #[tokio::test]
            async fn landlock() {
                super::$body(SandboxMode::Landlock).await;
            }
        }
    };
}
