//! What the model is told about the tools: name, description, JSON schema of the arguments (the
//! OpenAI tools format), and whether a call is idempotent (read-only, safe to repeat when a run
//! is redelivered) or changes the workspace.

use serde_json::{Value, json};

use super::CommandPolicy;

/// One tool.
#[derive(Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// Read-only: calling it again gives the same answer and changes nothing.
    pub idempotent: bool,
    /// Runs a process (needs a sandbox; refused with `sandbox_unavailable` without one).
    pub runs_command: bool,
    parameters: fn() -> Value,
}

impl ToolSpec {
    /// The JSON schema of the arguments.
    pub fn parameters(&self) -> Value {
        (self.parameters)()
    }

    /// `{"type":"function","function":{"name","description","parameters"}}`.
    pub fn openai_tool(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            }
        })
    }
}

const PATH_NOTE: &str = "a path relative to the workspace root (no absolute paths, no `..`)";

/// Every tool, in the order they are offered.
pub static TOOLS: [ToolSpec; 6] = [
    ToolSpec {
        name: "list_files",
        description: "List a directory of the workspace: `name/` for directories, `name  SIZE` \
                      for files, `name -> target` for symbolic links.",
        idempotent: true,
        runs_command: false,
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": format!("directory, {PATH_NOTE}; default the root")},
                    "recursive": {"type": "boolean", "description": "list subdirectories too (not inside .git)"},
                },
                "additionalProperties": false,
            })
        },
    },
    ToolSpec {
        name: "read_file",
        description: "Read a text file of the workspace. Long files are cut; read on with `offset`.",
        idempotent: true,
        runs_command: false,
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_NOTE},
                    "offset": {"type": "integer", "minimum": 0, "description": "byte to start at (default 0)"},
                },
                "required": ["path"],
                "additionalProperties": false,
            })
        },
    },
    ToolSpec {
        name: "write_file",
        description: "Create or replace a file of the workspace with `content` (parent \
                      directories are created). Files under .git cannot be written.",
        idempotent: false,
        runs_command: false,
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_NOTE},
                    "content": {"type": "string"},
                },
                "required": ["path", "content"],
                "additionalProperties": false,
            })
        },
    },
    ToolSpec {
        name: "append_file",
        description: "Append `content` to a file of the workspace (created if missing).",
        idempotent: false,
        runs_command: false,
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": PATH_NOTE},
                    "content": {"type": "string"},
                },
                "required": ["path", "content"],
                "additionalProperties": false,
            })
        },
    },
    ToolSpec {
        name: "delete_file",
        description: "Delete a file, a symbolic link (not its target) or an empty directory of \
                      the workspace.",
        idempotent: false,
        runs_command: false,
        parameters: || {
            json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": PATH_NOTE}},
                "required": ["path"],
                "additionalProperties": false,
            })
        },
    },
    ToolSpec {
        name: "bash",
        description: "Run ONE command in the workspace (the current directory), in a sandbox \
                      with no network. There is no shell: quoting works ('…', \"…\", \\), but \
                      pipes, redirections, `;`, `&&`, variables, substitutions and globs do not. \
                      Paths outside the workspace are refused.",
        idempotent: false,
        runs_command: true,
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "e.g. grep -rn 'fn main' src"},
                },
                "required": ["command"],
                "additionalProperties": false,
            })
        },
    },
];

/// The tool called `name`.
pub fn tool_spec(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The `tools` array of a chat completion request; the bash tool's description names the
/// commands `policy` allows (and is left out when `with_bash` is false, e.g. without a sandbox).
pub fn openai_tools(policy: &CommandPolicy, with_bash: bool) -> Vec<Value> {
    TOOLS
        .iter()
        .filter(|t| with_bash || !t.runs_command)
        .map(|t| {
            let mut tool = t.openai_tool();
            if t.runs_command {
                let allowed: Vec<&str> = policy.allowed().collect();
                let description = format!(
                    "{} Allowed commands: {}.",
                    t.description,
                    allowed.join(", ")
                );
                tool["function"]["description"] = Value::String(description);
            }
            tool
        })
        .collect()
}
