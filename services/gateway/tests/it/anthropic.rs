//! The anthropic adapter against mock-llm.
