//! What the mock answers. The reply cycles through a fixed sentence, so its length (and so its
//! token count) is chosen by the caller: `max_tokens`, or the `completion-tokens` fault
//! directive, else the sentence once. With tools offered, the mock calls the first (or the
//! named) tool, unless the last message is already a tool result; asked for JSON, it answers
//! with a JSON object.

use super::tokens;

const SENTENCE: &str = "Hello! This is mock-llm, an offline stand-in for a real model. Its answers are deterministic, so tests can count every token.";

/// What the caller asked for, in dialect-neutral terms.
#[derive(Debug, Default)]
pub struct Prompt {
    /// Every piece of text in the prompt (system, messages, tool results).
    pub texts: Vec<String>,
    pub max_tokens: Option<u32>,
    /// Tool names offered, in order, unless tool use is switched off.
    pub tools: Vec<String>,
    /// A tool the caller insists on.
    pub forced_tool: Option<String>,
    /// The last message is a tool result: answer in text.
    pub after_tool_result: bool,
    pub json_output: bool,
}

impl Prompt {
    /// The prompt's token count: every text in it, one token a word.
    pub fn tokens(&self) -> u32 {
        self.texts.iter().map(|t| tokens::count(t)).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCall,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The reply, as the words a stream sends one at a time.
    Text(Vec<String>),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub output: Output,
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Completion {
    /// The whole reply text (empty for a tool call).
    pub fn text(&self) -> String {
        match &self.output {
            Output::Text(words) => words.join(" "),
            Output::ToolCall { .. } => String::new(),
        }
    }

    /// The text as stream pieces: every word but the last carries its trailing space, so the
    /// pieces concatenate to [`Completion::text`].
    pub fn pieces(&self) -> Vec<String> {
        match &self.output {
            Output::Text(words) => {
                let last = words.len().saturating_sub(1);
                words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| if i < last { format!("{w} ") } else { w.clone() })
                    .collect()
            }
            Output::ToolCall { .. } => Vec::new(),
        }
    }
}

/// Answers `prompt`. `wanted_tokens` (a fault directive) overrides the natural length.
pub fn complete(prompt: &Prompt, wanted_tokens: Option<u32>) -> Completion {
    let prompt_tokens = prompt.tokens();
    let tool = prompt
        .forced_tool
        .clone()
        .or_else(|| prompt.tools.first().cloned());
    if let (Some(name), false) = (tool, prompt.after_tool_result) {
        let arguments = r#"{"query": "mock"}"#.to_owned();
        let completion_tokens = tokens::count(&name) + tokens::count(&arguments);
        let id = format!("call_{}", uuid::Uuid::new_v4().simple());
        return Completion {
            output: Output::ToolCall {
                id,
                name,
                arguments,
            },
            finish: Finish::ToolCall,
            prompt_tokens,
            completion_tokens,
        };
    }
    let natural: Vec<&str> = SENTENCE.split_whitespace().collect();
    let wanted = wanted_tokens.map_or(natural.len(), |n| n as usize);
    let mut words: Vec<String> = natural
        .iter()
        .cycle()
        .take(wanted)
        .map(|w| (*w).to_owned())
        .collect();
    if prompt.json_output {
        let json = serde_json::json!({ "message": words.join(" ") }).to_string();
        words = json.split_whitespace().map(str::to_owned).collect();
    }
    let mut finish = Finish::Stop;
    if let Some(max) = prompt.max_tokens
        && words.len() > max as usize
    {
        words.truncate(max as usize);
        finish = Finish::Length;
    }
    let completion_tokens = u32::try_from(words.len()).unwrap_or(u32::MAX);
    Completion {
        output: Output::Text(words),
        finish,
        prompt_tokens,
        completion_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            texts: vec![text.to_owned()],
            ..Prompt::default()
        }
    }

    #[test]
    fn the_reply_is_the_sentence_and_counts_are_words() {
        let c = complete(&prompt("say something nice"), None);
        assert_eq!(c.text(), SENTENCE);
        assert_eq!(c.prompt_tokens, 3);
        assert_eq!(c.completion_tokens, 21);
        assert_eq!(c.finish, Finish::Stop);
        assert_eq!(c.pieces().concat(), c.text());
    }

    #[test]
    fn max_tokens_truncates_with_finish_length() {
        let c = complete(
            &Prompt {
                max_tokens: Some(5),
                ..prompt("hi")
            },
            None,
        );
        assert_eq!(c.completion_tokens, 5);
        assert_eq!(c.text(), "Hello! This is mock-llm, an");
        assert_eq!(c.finish, Finish::Length);
    }

    #[test]
    fn wanted_tokens_cycle_the_sentence() {
        let c = complete(&prompt("hi"), Some(50));
        assert_eq!(c.completion_tokens, 50);
        assert_eq!(tokens::count(&c.text()), 50);
    }

    #[test]
    fn tools_are_called_until_a_result_comes_back() {
        let p = Prompt {
            tools: vec!["lookup".into(), "other".into()],
            ..prompt("find it")
        };
        let c = complete(&p, None);
        assert!(matches!(&c.output, Output::ToolCall { name, .. } if name == "lookup"));
        assert_eq!(c.finish, Finish::ToolCall);
        assert_eq!(c.completion_tokens, 3);
        let c = complete(
            &Prompt {
                after_tool_result: true,
                ..p
            },
            None,
        );
        assert_eq!(c.finish, Finish::Stop);
    }

    #[test]
    fn json_output_is_valid_json() {
        let c = complete(
            &Prompt {
                json_output: true,
                ..prompt("hi")
            },
            None,
        );
        let value: serde_json::Value = serde_json::from_str(&c.text()).unwrap();
        assert_eq!(value["message"], SENTENCE);
        assert_eq!(c.completion_tokens, tokens::count(&c.text()));
    }
}
