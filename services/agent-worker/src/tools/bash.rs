//! The `bash` tool: one command, checked by the [`super::policy`], run without a shell in the
//! sandbox; its output rendered for the model and the quota checked before and after.

use serde::Deserialize;

use super::{
    ToolContext, ToolErrorCode, ToolFailure, ToolOutcome, parse_arguments, quota, truncate_utf8,
};
use crate::sandbox::{ExecError, ExecOutput, ExecRequest, SandboxMode};

#[derive(Deserialize)]
struct BashArgs {
    command: String,
}

/// Runs the `bash` tool.
pub(super) async fn execute(
    arguments: serde_json::Value,
    ctx: &ToolContext,
) -> Result<ToolOutcome, ToolFailure> {
    let args: BashArgs = parse_arguments(arguments)?;
    if ctx.sandbox.mode() == SandboxMode::Unavailable {
        return Err(ToolFailure::new(
            ToolErrorCode::SandboxUnavailable,
            "commands are disabled: no sandbox works on this machine (file tools still work)",
        ));
    }
    let view = ctx.sandbox.workspace_view(&ctx.workspace);
    let prepared = ctx.commands.prepare(&args.command, &view)?;
    let quota = ctx.limits.workspace_quota_bytes;
    let before = quota::usage_of(ctx.workspace.clone()).await?;
    if before >= quota {
        return Err(quota::exceeded(
            before,
            quota,
            "delete files before running commands",
        ));
    }
    let limits = ctx.limits.process_limits();
    let req = ExecRequest {
        argv: &prepared.argv,
        workspace: &ctx.workspace,
        env: &prepared.env,
        limits: &limits,
        timeout: ctx.limits.timeout,
        max_output_bytes: ctx.limits.max_output_bytes,
        cancel: &ctx.cancel,
    };
    let cap = ctx.limits.max_output_bytes;
    let output = match ctx.sandbox.run(&req).await {
        Ok(output) => output,
        Err(ExecError::TimedOut(partial)) => {
            return Err(ToolFailure::new(
                ToolErrorCode::Timeout,
                format!(
                    "the command did not finish within {:?} and was killed; its output until \
                     then:\n{}",
                    ctx.limits.timeout,
                    render(&partial, cap / 4).0
                ),
            ));
        }
        Err(ExecError::Cancelled(_)) => {
            return Err(ToolFailure::new(
                ToolErrorCode::Cancelled,
                "the run was cancelled; the command was killed",
            ));
        }
        Err(e @ (ExecError::Unavailable | ExecError::Setup(_) | ExecError::Spawn(_))) => {
            return Err(ToolFailure::new(
                ToolErrorCode::SandboxUnavailable,
                e.to_string(),
            ));
        }
    };
    let (text, truncated) = render(&output, cap);
    let after = quota::usage_of(ctx.workspace.clone()).await?;
    if after > quota {
        return Err(quota::exceeded(
            after,
            quota,
            &format!(
                "the command wrote past it (nothing was undone; delete files). Its output:\n{text}"
            ),
        ));
    }
    Ok(ToolOutcome::Ok {
        output: text,
        truncated,
        exit_code: output.exit_code,
    })
}

/// stdout, then stderr and the exit status when there is something to say, within `cap` bytes
/// (plus a closing note when cut).
fn render(output: &ExecOutput, cap: usize) -> (String, bool) {
    let mut text = String::from_utf8_lossy(&output.stdout.bytes).into_owned();
    if !output.stderr.bytes.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("[stderr]\n");
        text.push_str(&String::from_utf8_lossy(&output.stderr.bytes));
    }
    let mut truncated = output.stdout.truncated() || output.stderr.truncated();
    truncated |= truncate_utf8(&mut text, cap);
    if truncated {
        text.push_str(&format!(
            "\n[output truncated: {} bytes of stdout, {} of stderr in all]",
            output.stdout.total_bytes, output.stderr.total_bytes
        ));
    }
    match (output.exit_code, output.signal) {
        (Some(0), _) => {}
        (Some(code), _) => text.push_str(&format!("\n[exit code {code}]")),
        (None, Some(signal)) => text.push_str(&format!("\n[killed by signal {signal}]")),
        (None, None) => {}
    }
    (text, truncated)
}
