//! The conversation a run sends the model, rebuilt from the step log every time (the log is
//! the only state a run has), and the model's reply read back.

use sb_agents::steps::StepView;
use sb_kernel::{StepKind, StepState};
use serde_json::{Value, json};

/// The messages for the next model call: the agent's instructions, the run's input, then each
/// step — an assistant message as the model sent it, a tool call's result (or its refusal).
pub fn messages(instructions: &str, input: &Value, steps: &[StepView]) -> Vec<Value> {
    let mut messages = Vec::with_capacity(steps.len() + 2);
    if !instructions.is_empty() {
        messages.push(json!({"role": "system", "content": instructions}));
    }
    messages.push(json!({"role": "user", "content": user_text(input)}));
    for step in steps {
        match step.kind {
            StepKind::Model => {
                if let Some(message) = &step.message {
                    messages.push(message.clone());
                }
            }
            StepKind::Tool => {
                let content = match (step.state, &step.result) {
                    (StepState::Finished, Some(result)) => result_text(result),
                    (StepState::Rejected, result) => format!(
                        "A person rejected this tool call{}. Do not try it again as it was.",
                        result
                            .as_ref()
                            .and_then(|r| r["reason"].as_str())
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                    // Not finished: it is the call in hand, whose result comes next.
                    _ => continue,
                };
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": step.tool_call_id,
                    "content": content,
                }));
            }
        }
    }
    messages
}

/// A run's input as the user's message: a string as it is, `{"message": "…"}` by its message,
/// anything else as JSON text.
fn user_text(input: &Value) -> String {
    match input {
        Value::String(text) => text.clone(),
        Value::Object(map) => match map.get("message").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => input.to_string(),
        },
        other => other.to_string(),
    }
}

/// A tool's recorded result as the text the model reads.
fn result_text(result: &Value) -> String {
    match result["status"].as_str() {
        Some("ok") => result["output"].as_str().unwrap_or_default().to_owned(),
        Some("failed") => format!(
            "error ({}): {}",
            result["code"].as_str().unwrap_or("error"),
            result["message"].as_str().unwrap_or_default()
        ),
        _ => result.to_string(),
    }
}

/// One tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposedCall {
    pub id: String,
    pub tool: String,
    pub arguments: Value,
}

/// What the model answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Tool calls to make, in order; the message is recorded as the model step.
    Tools {
        message: Value,
        calls: Vec<ProposedCall>,
    },
    /// The final answer: the run succeeds with it.
    Final { message: Value, text: String },
}

/// Reads an OpenAI chat completion. Arguments that are not a JSON object are kept as the
/// string the model sent, under `{"_raw": …}`, so the tool refuses them with a clear error
/// instead of the run failing.
pub fn read_reply(completion: &Value) -> Option<Reply> {
    let message = completion["choices"][0]["message"].clone();
    if !message.is_object() {
        return None;
    }
    let calls: Vec<ProposedCall> = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| {
                    let raw = c["function"]["arguments"].as_str().unwrap_or("{}");
                    let arguments = match serde_json::from_str::<Value>(raw) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => json!({"_raw": raw}),
                    };
                    ProposedCall {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        tool: c["function"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        arguments,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        let text = message["content"].as_str().unwrap_or_default().to_owned();
        Some(Reply::Final { message, text })
    } else {
        Some(Reply::Tools { message, calls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_with_tool_calls_is_read_with_its_arguments() {
        let completion = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\":\"a.txt\"}"}}]}}]});
        let Some(Reply::Tools { calls, .. }) = read_reply(&completion) else {
            panic!("tool calls expected")
        };
        assert_eq!(calls[0].tool, "read_file");
        assert_eq!(calls[0].arguments, json!({"path": "a.txt"}));
        let text = json!({"choices": [{"message": {"role": "assistant", "content": "done"}}]});
        assert!(matches!(read_reply(&text), Some(Reply::Final { text, .. }) if text == "done"));
        assert_eq!(read_reply(&json!({})), None);
    }

    #[test]
    fn input_becomes_the_users_message() {
        assert_eq!(user_text(&json!("hi")), "hi");
        assert_eq!(user_text(&json!({"message": "hello"})), "hello");
        assert_eq!(user_text(&json!({"a": 1})), "{\"a\":1}");
    }
}
