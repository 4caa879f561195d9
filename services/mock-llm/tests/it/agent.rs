//! `mock-agent` over the OpenAI dialect: a script in the first user message played turn by
//! turn from the conversation alone (so the same conversation always gets the same answer),
//! `sleep` lines, bad lines, and streamed answers that match the whole ones.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use sb_testkit::RunningApp;

use crate::helpers::{client, json_data, mock, parse_sse, post_json, post_text};

const CHAT: &str = "/v1/chat/completions";

/// A preamble, the `script:` marker, then four turns (and a comment, which is not one).
const TRIP: &str = "Plan my afternoon in Paris.
script:
tool weather {\"city\": \"Paris\"}
tool convert {\"celsius\": 25, \"to\": \"F\"}
# two lookups, a booking, then the answer
tool book {\"what\": \"boat tour\", \"at\": \"15:00\"}
say It is 77 F and sunny: your boat tour is booked for 3 pm.";

fn user(text: &str) -> Value {
    json!({ "role": "user", "content": text })
}

fn agent_request(messages: &[Value]) -> Value {
    json!({ "model": "mock-agent", "messages": messages })
}

/// The mock's token count, done by hand: one token per word of every message's content.
fn words_in(messages: &[Value]) -> usize {
    messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .map(|c| c.split_whitespace().count())
        .sum()
}

async fn ask(app: &RunningApp, messages: &[Value]) -> Value {
    let (status, _, body) = post_json(app, CHAT, &agent_request(messages)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A streamed answer's chunks (without `[DONE]`), with usage asked for.
async fn ask_streamed(app: &RunningApp, messages: &[Value]) -> Vec<Value> {
    let mut request = agent_request(messages);
    request["stream"] = json!(true);
    request["stream_options"] = json!({ "include_usage": true });
    let (status, content_type, text) = post_text(client().post(app.url(CHAT)).json(&request)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]", "{text}");
    json_data(&events[..events.len() - 1])
}

#[tokio::test]
async fn a_script_is_walked_turn_by_turn_from_the_conversation() {
    let app = mock().await;
    let mut messages = vec![
        json!({ "role": "system", "content": "You are a travel agent." }),
        user(TRIP),
    ];
    let tools = [
        ("weather", json!({ "city": "Paris" }), "sunny, 25 C"),
        ("convert", json!({ "celsius": 25, "to": "F" }), "77 F"),
        (
            "book",
            json!({ "what": "boat tour", "at": "15:00" }),
            "booked, ref B-42",
        ),
    ];
    for (turn, (name, arguments, result)) in tools.into_iter().enumerate() {
        let body = ask(&app, &messages).await;
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "turn {turn}: {body}");
        let message = &choice["message"];
        assert_eq!(message["role"], "assistant");
        assert!(message["content"].is_null(), "{body}");
        let call = &message["tool_calls"][0];
        assert_eq!(call["id"], format!("call_{}", turn + 1));
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], name);
        let sent = call["function"]["arguments"].as_str().unwrap();
        assert_eq!(serde_json::from_str::<Value>(sent).unwrap(), arguments);
        assert_eq!(body["usage"]["prompt_tokens"], words_in(&messages));
        assert_eq!(
            body["usage"]["completion_tokens"],
            1 + sent.split_whitespace().count(),
            "the name and the arguments' words"
        );
        // The conversation grows as an agent loop would grow it.
        messages.push(message.clone());
        messages.push(json!({ "role": "tool", "tool_call_id": call["id"], "content": result }));
    }

    let body = ask(&app, &messages).await;
    let answer = "It is 77 F and sunny: your boat tour is booked for 3 pm.";
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], answer);
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(body["usage"]["prompt_tokens"], words_in(&messages));
    assert_eq!(body["usage"]["completion_tokens"], 14, "one token a word");
    let total = words_in(&messages) + 14;
    assert_eq!(body["usage"]["total_tokens"], total);

    // Past the end of the script, the agent is done.
    messages.push(body["choices"][0]["message"].clone());
    messages.push(user("Anything else?"));
    let body = ask(&app, &messages).await;
    assert_eq!(body["choices"][0]["message"]["content"], "done");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn the_same_conversation_gets_the_same_answer_from_any_mock() {
    let (first, second) = (mock().await, mock().await);
    let messages = [
        user(TRIP),
        json!({ "role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": { "name": "weather", "arguments": "{\"city\": \"Paris\"}" },
        }]}),
        json!({ "role": "tool", "tool_call_id": "call_1", "content": "sunny, 25 C" }),
    ];
    let answers = [
        ask(&first, &messages).await,
        ask(&first, &messages).await,
        ask(&second, &messages).await,
    ];
    for answer in &answers {
        assert_eq!(answer["choices"], answers[0]["choices"]);
        assert_eq!(answer["usage"], answers[0]["usage"]);
    }
    let call = &answers[0]["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_2");
    assert_eq!(call["function"]["name"], "convert");
}

#[tokio::test]
async fn sleep_delays_the_turn_after_it() {
    let app = mock().await;
    let script = "tool wait {}\nsleep 200\nsay slept";
    let mut messages = vec![user(script)];
    let body = ask(&app, &messages).await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    messages.push(body["choices"][0]["message"].clone());
    messages.push(json!({ "role": "tool", "tool_call_id": "call_1", "content": "ok" }));

    let started = Instant::now();
    let body = ask(&app, &messages).await;
    let took = started.elapsed();
    assert_eq!(body["choices"][0]["message"]["content"], "slept");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn a_bad_line_is_a_400_naming_it_whole_or_streamed() {
    let app = mock().await;
    let messages = [user("say hello\n\nfly to the moon\nsay never reached")];
    for stream in [false, true] {
        let mut request = agent_request(&messages);
        request["stream"] = json!(stream);
        let (status, _, body) = post_json(&app, CHAT, &request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = &body["error"];
        assert_eq!(error["type"], "invalid_request_error");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("line 3"), "{message}");
        assert!(message.contains("fly to the moon"), "{message}");
        assert!(message.contains("expected"), "{message}");
    }
    // Broken arguments too: the whole script is checked on the first turn.
    let request = agent_request(&[user("say hello\ntool search {\"q\": ")]);
    let (status, _, body) = post_json(&app, CHAT, &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("not JSON"), "{message}");
}

#[tokio::test]
async fn streamed_answers_reassemble_to_the_whole_ones() {
    let app = mock().await;
    let mut messages = vec![user(TRIP)];
    let whole = ask(&app, &messages).await;
    let chunks = ask_streamed(&app, &messages).await;

    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .collect();
    assert!(!calls.is_empty(), "{chunks:?}");
    let expected = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(calls[0]["id"], expected["id"]);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], expected["function"]["name"]);
    assert!(calls.iter().all(|c| c["index"] == 0));
    let arguments: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        arguments,
        expected["function"]["arguments"].as_str().unwrap()
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);

    // A `say` turn streams its text.
    messages = vec![user("say Streamed words arrive one by one.")];
    let whole = ask(&app, &messages).await;
    let chunks = ask_streamed(&app, &messages).await;
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(text, "Streamed words arrive one by one.");
    assert_eq!(whole["choices"][0]["message"]["content"], text);
    assert_eq!(chunks.last().unwrap()["usage"], whole["usage"]);
}

#[tokio::test]
async fn mock_agent_is_listed() {
    let app = mock().await;
    let models: Value = client()
        .get(app.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "mock-agent"),
        "{models}"
    );
}
