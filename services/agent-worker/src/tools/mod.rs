//! The agents' tools: a registry of what the model may call ([`registry`]) and [`execute`], which
//! runs one call inside the run's workspace and returns a [`ToolOutcome`].
//!
//! File tools (`list_files`, `read_file`, `write_file`, `append_file`, `delete_file`) are done by
//! the worker itself, resolving every path beneath the workspace with `openat2(RESOLVE_BENEATH)`
//! ([`paths`]); they work whatever the sandbox mode. `bash` runs one allow-listed command without
//! a shell ([`bash`], [`policy`], [`argv`]) through the [`crate::sandbox`], and is refused with
//! `sandbox_unavailable` where there is none.
//!
//! Guarantees, and their limits:
//! - A file tool never touches anything outside the workspace directory: absolute paths and `..`
//!   are refused before any system call, and resolution is one `openat2` call relative to a
//!   directory descriptor of the workspace that the kernel stops from leaving it (symlinks
//!   included, checked atomically, so a symlink swapped in between checks cannot redirect it).
//!   Files with more than one hard link are refused (a link could share an inode with a file
//!   outside), as are non-regular files. Writes, creations and deletions follow no symlink at
//!   all (`RESOLVE_NO_SYMLINKS`), so a link made inside the workspace cannot route them to a
//!   path refused by name (`.git/…`). On kernels without `openat2` (before 5.6) each component
//!   is opened with `O_NOFOLLOW`, which refuses every symlink.
//! - Quota: `write_file`/`append_file` compute the workspace's size (apparent size of regular
//!   files) and refuse *before writing* when the result would exceed the quota, so they never
//!   take it past. This is exact when nothing else writes the workspace at the same time. `bash`
//!   is refused when the workspace is already at the quota; a command can still write past it
//!   (each file bounded by the file-size rlimit, the whole by its time limit): it is then
//!   reported `quota_exceeded` afterwards and nothing is undone; every later write is refused
//!   until files are deleted.

mod argv;
mod bash;
mod files;
mod paths;
mod policy;
mod quota;
mod registry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::sandbox::{ProcessLimits, Sandbox};

pub use policy::{
    CommandPolicy, DEFAULT_ALLOWED_COMMANDS, NEVER_ALLOWED_COMMANDS, PolicyError, PreparedCommand,
};
pub use registry::{TOOLS, ToolSpec, openai_tools, tool_spec};

/// One call the model made.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    pub name: String,
    /// A JSON object, or a string holding one (as OpenAI sends `function.arguments`).
    pub arguments: serde_json::Value,
}

/// What one tool call may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolLimits {
    /// Wall-clock limit of a command (`AGENT_TOOL_TIMEOUT_SECONDS`).
    pub timeout: Duration,
    /// Bytes of output returned (per stream for commands); the rest is dropped and flagged.
    pub max_output_bytes: usize,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    /// Largest file a tool writes (file tools) or a command may write (`RLIMIT_FSIZE`).
    pub max_file_size_bytes: u64,
    pub max_open_files: u64,
    pub max_processes: u64,
    /// `MAX_WORKSPACE_SIZE_GB`, in bytes.
    pub workspace_quota_bytes: u64,
    /// Size of the sandbox's `/tmp` (bubblewrap mode).
    pub tmp_bytes: u64,
}

impl Default for ToolLimits {
    fn default() -> Self {
        let process = ProcessLimits::default();
        Self {
            timeout: Duration::from_secs(30),
            max_output_bytes: 64 << 10,
            cpu_seconds: process.cpu_seconds,
            memory_bytes: process.memory_bytes,
            max_file_size_bytes: process.file_size_bytes,
            max_open_files: process.open_files,
            max_processes: process.processes,
            workspace_quota_bytes: 1 << 30,
            tmp_bytes: process.tmp_bytes,
        }
    }
}

impl ToolLimits {
    pub fn process_limits(&self) -> ProcessLimits {
        ProcessLimits {
            cpu_seconds: self.cpu_seconds,
            memory_bytes: self.memory_bytes,
            file_size_bytes: self.max_file_size_bytes,
            open_files: self.max_open_files,
            processes: self.max_processes,
            tmp_bytes: self.tmp_bytes,
        }
    }
}

/// Everything a tool call runs with; one per agent run.
#[derive(Clone, Debug)]
pub struct ToolContext {
    /// The run's workspace directory (host path); must exist.
    pub workspace: PathBuf,
    pub limits: ToolLimits,
    /// The run's token: cancelling it kills a running command's process group at once.
    pub cancel: CancellationToken,
    /// From [`Sandbox::detect`] at start.
    pub sandbox: Sandbox,
    /// `ALLOWED_BASH_COMMANDS`.
    pub commands: Arc<CommandPolicy>,
}

/// A stable machine code for why a call did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolErrorCode {
    UnknownTool,
    InvalidArguments,
    PathOutsideWorkspace,
    NotFound,
    NotARegularFile,
    FileTooLarge,
    QuotaExceeded,
    CommandNotAllowed,
    ArgumentNotAllowed,
    ShellSyntaxNotAllowed,
    SandboxUnavailable,
    Timeout,
    Cancelled,
    Io,
}

impl ToolErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownTool => "unknown_tool",
            Self::InvalidArguments => "invalid_arguments",
            Self::PathOutsideWorkspace => "path_outside_workspace",
            Self::NotFound => "not_found",
            Self::NotARegularFile => "not_a_regular_file",
            Self::FileTooLarge => "file_too_large",
            Self::QuotaExceeded => "quota_exceeded",
            Self::CommandNotAllowed => "command_not_allowed",
            Self::ArgumentNotAllowed => "argument_not_allowed",
            Self::ShellSyntaxNotAllowed => "shell_syntax_not_allowed",
            Self::SandboxUnavailable => "sandbox_unavailable",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Io => "io_error",
        }
    }
}

/// A refusal or failure: the code for programs, the message for the model and people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ToolFailure {
    pub code: ToolErrorCode,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: ToolErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The result of one call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ToolOutcome {
    Ok {
        output: String,
        /// Output was cut to `max_output_bytes` (a note at its end says so too).
        truncated: bool,
        /// A command's exit code (`None` for file tools, or when killed by a signal).
        exit_code: Option<i32>,
    },
    Failed(ToolFailure),
}

impl ToolOutcome {
    pub fn ok(output: String, truncated: bool) -> Self {
        Self::Ok {
            output,
            truncated,
            exit_code: None,
        }
    }

    pub fn failed(code: ToolErrorCode, message: impl Into<String>) -> Self {
        Self::Failed(ToolFailure::new(code, message))
    }

    /// The failure code, if it failed.
    pub fn error_code(&self) -> Option<ToolErrorCode> {
        match self {
            Self::Ok { .. } => None,
            Self::Failed(f) => Some(f.code),
        }
    }

    /// The text to hand back to the model as the tool message.
    pub fn to_model_text(&self) -> String {
        match self {
            Self::Ok { output, .. } => output.clone(),
            Self::Failed(f) => format!("error ({}): {}", f.code.as_str(), f.message),
        }
    }
}

impl From<ToolFailure> for ToolOutcome {
    fn from(failure: ToolFailure) -> Self {
        Self::Failed(failure)
    }
}

/// Runs one tool call. Never panics; every refusal is a [`ToolOutcome::Failed`].
pub async fn execute(call: &ToolCall, ctx: &ToolContext) -> ToolOutcome {
    if ctx.cancel.is_cancelled() {
        return ToolOutcome::failed(ToolErrorCode::Cancelled, "the run was cancelled");
    }
    let Some(spec) = tool_spec(&call.name) else {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        return ToolOutcome::failed(
            ToolErrorCode::UnknownTool,
            format!(
                "no tool {:?}; the tools are {}",
                call.name,
                names.join(", ")
            ),
        );
    };
    let arguments = match arguments_object(&call.arguments) {
        Ok(arguments) => arguments,
        Err(failure) => return failure.into(),
    };
    let result = if spec.name == "bash" {
        bash::execute(arguments, ctx).await
    } else {
        files::execute(spec.name, arguments, ctx).await
    };
    result.unwrap_or_else(ToolOutcome::from)
}

fn arguments_object(value: &serde_json::Value) -> Result<serde_json::Value, ToolFailure> {
    let value = match value {
        serde_json::Value::String(text) => serde_json::from_str(text).map_err(|e| {
            ToolFailure::new(
                ToolErrorCode::InvalidArguments,
                format!("arguments are not JSON: {e}"),
            )
        })?,
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other.clone(),
    };
    if value.is_object() {
        Ok(value)
    } else {
        Err(ToolFailure::new(
            ToolErrorCode::InvalidArguments,
            "arguments must be a JSON object",
        ))
    }
}

/// Parses a tool's arguments into its struct.
fn parse_arguments<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ToolFailure> {
    serde_json::from_value(value).map_err(|e| {
        ToolFailure::new(
            ToolErrorCode::InvalidArguments,
            format!("invalid arguments: {e}"),
        )
    })
}

/// Cuts `text` to at most `max` bytes on a character boundary; true if it cut.
fn truncate_utf8(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}
