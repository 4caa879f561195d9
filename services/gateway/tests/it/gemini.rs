//! The gemini adapter against mock-llm.
