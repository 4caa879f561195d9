//! The gateway's provider adapters against mock-llm: each dialect's completions, streams, tool
//! calls and failures, with the exact token counts the mock computes (one per word).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod gemini;
mod helpers;
mod openai;
mod wire;
