//! The gateway: its provider adapters against mock-llm (each dialect's completions, streams,
//! tool calls and failures, with the exact token counts the mock computes, one per word), and
//! whole calls through a running gateway with real Postgres and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod buffer;
mod calls;
mod gemini;
mod helpers;
mod keys;
mod openai;
mod policy;
mod routing;
mod sdk;
mod support;
mod wire;
