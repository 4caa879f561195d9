//! Estimates made before the call: prompt tokens from the request's text, and the output the
//! call may produce. They size the reservation and the tokens-per-minute check; the charge is
//! always the provider's own count (or, for a cut stream, what was sent).

use serde_json::Value;

/// Output tokens reserved when the request sets no `max_tokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4096;

/// About four characters per token, plus a little per message, rounded up.
pub fn prompt_tokens(body: &Value) -> u64 {
    let mut chars = 0usize;
    let mut messages = 0u64;
    if let Some(list) = body.get("messages").and_then(Value::as_array) {
        for message in list {
            messages += 1;
            chars += text_len(message.get("content"));
        }
    }
    if let Some(input) = body.get("input") {
        chars += text_len(Some(input));
    }
    if let Some(tools) = body.get("tools") {
        chars += json_len(tools);
    }
    (chars as u64).div_ceil(4) + 4 * messages
}

/// The most output the request allows: its per-choice limit times the number of choices it
/// asks for (`n`; OpenAI generates, and charges, each of them), so `n: 4` holds four times as
/// much as one answer would.
pub fn max_output_tokens(body: &Value) -> u64 {
    let per_choice = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS);
    per_choice.saturating_mul(choices(body))
}

/// How many choices the request asks for: `n`, at least 1 (a provider refuses a bad `n`).
fn choices(body: &Value) -> u64 {
    body.get("n").and_then(Value::as_u64).unwrap_or(1).max(1)
}

/// Tokens in streamed text that was sent but never counted by the provider (a cut stream).
pub fn text_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The length of `value` as JSON, counted without building the string.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

fn text_len(content: Option<&Value>) -> usize {
    match content {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.len(),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .map_or(0, str::len),
            })
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_estimate_counts_text_and_messages() {
        let body = json!({"messages": [
            {"role": "system", "content": "abcd"},
            {"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}
        ]});
        assert_eq!(prompt_tokens(&body), 3 + 8);
        assert_eq!(max_output_tokens(&json!({"max_tokens": 7})), 7);
        assert_eq!(max_output_tokens(&json!({})), DEFAULT_MAX_OUTPUT_TOKENS);
        assert_eq!(max_output_tokens(&json!({"max_tokens": 7, "n": 4})), 28);
        assert_eq!(
            max_output_tokens(&json!({"n": 2})),
            2 * DEFAULT_MAX_OUTPUT_TOKENS
        );
        assert_eq!(max_output_tokens(&json!({"max_tokens": 7, "n": 0})), 7);
        assert_eq!(
            max_output_tokens(&json!({"max_tokens": u64::MAX, "n": 2})),
            u64::MAX
        );
        assert_eq!(text_tokens(9), 3);
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        assert_eq!(json_len(&tools), tools.to_string().len());
    }
}
