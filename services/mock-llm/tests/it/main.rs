//! mock-llm over HTTP: each dialect's wire format (JSON and streaming), the token counts a
//! test can compute by hand (one token per whitespace-separated word), the scripted
//! `mock-agent`, the injected faults, and the health and metrics routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent;
mod anthropic;
mod faults;
mod gemini;
mod health;
mod helpers;
mod openai;
