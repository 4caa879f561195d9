//! The bridge from a run's step to the tools: each run's workspace directory, the limits and
//! the sandbox from the configuration, and the outcome recorded as the step's result.

use std::path::PathBuf;
use std::sync::Arc;

use sb_config::AgentConfig;
use sb_kernel::TenantId;
use serde_json::Value;
use uuid::Uuid;

use crate::core::advance::HeldRun;
use crate::core::worker::Worker;
use crate::sandbox::{Sandbox, SandboxMode};
use crate::tools::{self, CommandPolicy, PolicyError, ToolCall, ToolContext, ToolLimits};

/// The tools as this worker runs them.
#[derive(Clone)]
pub struct Tools {
    root: PathBuf,
    limits: ToolLimits,
    sandbox: Sandbox,
    commands: Arc<CommandPolicy>,
}

impl Tools {
    pub fn new(config: &AgentConfig, sandbox: Sandbox) -> Result<Self, PolicyError> {
        let limits = ToolLimits {
            timeout: config.tool_timeout,
            workspace_quota_bytes: u64::from(config.max_workspace_size_gb) << 30,
            ..ToolLimits::default()
        };
        Ok(Self {
            root: PathBuf::from(&config.workspace_root),
            limits,
            sandbox,
            commands: Arc::new(CommandPolicy::new(&config.allowed_bash_commands)?),
        })
    }

    pub fn sandbox_mode(&self) -> SandboxMode {
        self.sandbox.mode()
    }

    /// The OpenAI `tools` of an agent that may use `names`.
    pub fn schemas(&self, names: &[String]) -> Vec<Value> {
        tools::TOOLS
            .iter()
            .filter(|t| names.iter().any(|n| n == t.name))
            .map(|t| t.openai_tool())
            .collect()
    }

    /// A run's directory: `WORKSPACE_ROOT/{tenant}/{run}`, or the workspace's when the run
    /// names one (`…/{tenant}/ws-{workspace}`), so runs of one workspace share their files.
    pub fn workspace(&self, tenant: TenantId, run: Uuid, workspace: Option<Uuid>) -> PathBuf {
        let dir = match workspace {
            Some(w) => format!("ws-{w}"),
            None => run.to_string(),
        };
        self.root.join(tenant.to_string()).join(dir)
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

/// Whether a call of `tool` may be repeated after a crash without asking (it only reads).
pub fn is_idempotent(tool: &str) -> bool {
    tools::tool_spec(tool).is_some_and(|spec| spec.idempotent)
}

/// Runs one tool call in the run's workspace; the outcome as the step records it
/// (`{"status": "ok", "output", "truncated", "exit_code"}` or
/// `{"status": "failed", "code", "message"}`).
pub async fn run(
    worker: &Worker,
    run: &HeldRun,
    workspace: Option<Uuid>,
    tool: &str,
    arguments: &Value,
) -> Value {
    let dir = worker
        .tools
        .workspace(run.tenant, run.id.as_uuid(), workspace);
    if let Err(e) = tokio::fs::create_dir_all(&dir).await {
        return failed(
            "io_error",
            format!("could not make the run's workspace: {e}"),
        );
    }
    let ctx = ToolContext {
        workspace: dir,
        limits: worker.tools.limits.clone(),
        cancel: run.halt.clone(),
        sandbox: worker.tools.sandbox.clone(),
        commands: Arc::clone(&worker.tools.commands),
    };
    let call = ToolCall {
        name: tool.to_owned(),
        arguments: arguments.clone(),
    };
    let outcome = tools::execute(&call, &ctx).await;
    serde_json::to_value(&outcome).unwrap_or_else(|e| failed("io_error", e.to_string()))
}

/// A failed outcome in the shape the tools give.
pub fn failed(code: &str, message: impl Into<String>) -> Value {
    serde_json::json!({"status": "failed", "code": code, "message": message.into()})
}
