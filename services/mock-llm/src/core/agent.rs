//! `mock-agent`: a model that plays a scripted agent, so agent runs are reproducible offline.
//!
//! The model keeps no state. Every request carries the whole conversation, and the conversation
//! carries both the script and how far it has got:
//!
//! - **The script** is the text of the first `user` message. If that text has a line that is
//!   exactly `script:` (surrounding whitespace ignored), the script is what follows the first
//!   such line; otherwise it is the whole text. Lines are numbered from 1 at the start of the
//!   message, whichever part is the script. Blank lines and lines whose first non-blank
//!   character is `#` are ignored. Every other line is one of:
//!   - `tool NAME {json arguments}`: call tool NAME with that JSON object (the object may be
//!     left out: `{}`). NAME is any run of non-blank characters; the mock does not check that
//!     the request offered that tool, so a script can also play a model that misbehaves.
//!   - `say TEXT`: answer TEXT (runs of white space become one space) and end the run.
//!   - `sleep MS`: wait MS milliseconds before the next answer. A sleep is not a turn: it
//!     delays the turn that follows it (several in a row add up; sleeps after the last turn
//!     delay every "done" answered past the end).
//! - **The position** is the number of `assistant` messages in the conversation: each one
//!   consumed a turn. The answer is the next turn's line; a tool result (`tool` message) only
//!   answers the previous call. Once the script is exhausted, the answer is `say done`.
//!
//! The whole script is checked on every request, so a bad line is reported on the first turn
//! rather than after the turns before it have run. Tool-call ids are `call_N`, N the 1-based
//! turn number, so a retried request gets the same answer. `max_tokens` and the
//! `completion-tokens` fault do not apply: the script says what the answer is.

use std::fmt;
use std::time::Duration;

use super::completion::{Completion, Finish, Output};
use super::tokens;

/// The model's name, as clients ask for it.
pub const MODEL: &str = "mock-agent";

/// What the script says to answer, and how long to wait before answering.
#[derive(Debug, Clone)]
pub struct Turn {
    pub delay: Duration,
    pub completion: Completion,
}

/// A line of the script that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// 1-based, counted from the start of the first user message.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mock-agent script, line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ScriptError {}

/// What one turn answers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Tool { name: String, arguments: String },
    Say(String),
}

/// The script, parsed: its turns in order, each with the sleeps written before it, and the
/// sleeps after the last turn (they delay the "done" that follows).
#[derive(Debug, Default, PartialEq, Eq)]
struct Script {
    turns: Vec<(Duration, Reply)>,
    trailing_delay: Duration,
}

/// The answer to a conversation whose first user message is `script_text` and which holds
/// `assistant_messages` assistant turns. `prompt_tokens` is counted by the caller, as for the
/// other models.
pub fn answer(
    script_text: &str,
    assistant_messages: usize,
    prompt_tokens: u32,
) -> Result<Turn, ScriptError> {
    let script = parse(script_text)?;
    let (delay, reply) = script
        .turns
        .into_iter()
        .nth(assistant_messages)
        .unwrap_or((script.trailing_delay, Reply::Say("done".to_owned())));
    let turn_number = assistant_messages.saturating_add(1);
    let completion = match reply {
        Reply::Tool { name, arguments } => Completion {
            completion_tokens: tokens::count(&name).saturating_add(tokens::count(&arguments)),
            output: Output::ToolCall {
                id: format!("call_{turn_number}"),
                name,
                arguments,
            },
            finish: Finish::ToolCall,
            prompt_tokens,
        },
        Reply::Say(text) => {
            let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
            Completion {
                completion_tokens: u32::try_from(words.len()).unwrap_or(u32::MAX),
                output: Output::Text(words),
                finish: Finish::Stop,
                prompt_tokens,
            }
        }
    };
    Ok(Turn { delay, completion })
}

/// Parses the whole script, reporting the first line that does not parse.
fn parse(text: &str) -> Result<Script, ScriptError> {
    let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
    let start = lines
        .iter()
        .position(|(_, l)| l.trim() == "script:")
        .map_or(0, |marker| marker + 1);
    let mut script = Script::default();
    let mut pending = Duration::ZERO;
    for &(number, line) in lines.iter().skip(start) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| ScriptError {
            line: number,
            message,
        };
        let (verb, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(v, r)| (v, r.trim()));
        match verb {
            "tool" => {
                let (name, arguments) = rest
                    .split_once(char::is_whitespace)
                    .map_or((rest, ""), |(n, a)| (n, a.trim()));
                if name.is_empty() || name.starts_with('{') {
                    return Err(fail(format!(
                        "expected `tool NAME {{json arguments}}`, found {line:?}: the tool has no name"
                    )));
                }
                let arguments = if arguments.is_empty() {
                    "{}"
                } else {
                    arguments
                };
                match serde_json::from_str::<serde_json::Value>(arguments) {
                    Ok(value) if value.is_object() => {}
                    Ok(_) => {
                        return Err(fail(format!(
                            "expected `tool NAME {{json arguments}}`, found {line:?}: the arguments are not a JSON object"
                        )));
                    }
                    Err(e) => {
                        return Err(fail(format!(
                            "expected `tool NAME {{json arguments}}`, found {line:?}: the arguments are not JSON ({e})"
                        )));
                    }
                }
                script.turns.push((
                    std::mem::take(&mut pending),
                    Reply::Tool {
                        name: name.to_owned(),
                        arguments: arguments.to_owned(),
                    },
                ));
            }
            "say" if !rest.is_empty() => {
                script
                    .turns
                    .push((std::mem::take(&mut pending), Reply::Say(rest.to_owned())));
            }
            "say" => {
                return Err(fail(format!(
                    "expected `say TEXT`, found {line:?}: there is no text"
                )));
            }
            "sleep" => {
                let ms: u64 = rest.parse().map_err(|_| {
                    fail(format!(
                        "expected `sleep MS` with MS a whole number of milliseconds, found {line:?}"
                    ))
                })?;
                pending = pending.saturating_add(Duration::from_millis(ms));
            }
            _ => {
                return Err(fail(format!(
                    "expected `tool NAME {{json arguments}}`, `say TEXT` or `sleep MS`, found {line:?}"
                )));
            }
        }
    }
    script.trailing_delay = pending;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn tool(name: &str, arguments: &str) -> Reply {
        Reply::Tool {
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        }
    }

    #[test]
    fn lines_parse_with_sleeps_attached_to_the_next_turn() {
        let script = parse(
            "# a comment\n\ntool search {\"q\": \"rust\"}\n  sleep 5\nsleep 7\ntool clock\nsay All done.\nsleep 3\n",
        )
        .unwrap();
        assert_eq!(
            script,
            Script {
                turns: vec![
                    (Duration::ZERO, tool("search", "{\"q\": \"rust\"}")),
                    (ms(12), tool("clock", "{}")),
                    (Duration::ZERO, Reply::Say("All done.".to_owned())),
                ],
                trailing_delay: ms(3),
            }
        );
    }

    #[test]
    fn a_script_marker_skips_the_preamble_but_not_the_line_numbers() {
        let text = "Run the scripted agent.\nIt says hello.\nscript:\nsay hello\nwat\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        let script = parse("ignored preamble\n  script:  \nsay hi").unwrap();
        assert_eq!(
            script.turns,
            vec![(Duration::ZERO, Reply::Say("hi".into()))]
        );
    }

    #[test]
    fn without_a_marker_the_whole_message_is_the_script() {
        let err = parse("Please be an agent.\nsay hi").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("`say TEXT`"), "{err}");
    }

    #[test]
    fn bad_lines_name_what_was_expected() {
        let cases = [
            ("tool", "the tool has no name"),
            ("tool {\"a\": 1}", "the tool has no name"),
            ("tool t {not json", "not JSON"),
            ("tool t [1, 2]", "not a JSON object"),
            ("say", "`say TEXT`"),
            ("sleep soon", "`sleep MS`"),
            ("sleep -5", "`sleep MS`"),
        ];
        for (line, expected) in cases {
            let err = parse(&format!("say ok\n{line}")).unwrap_err();
            assert_eq!(err.line, 2, "{line}: {err}");
            assert!(err.message.contains(expected), "{line}: {err}");
            assert!(err.to_string().contains("line 2"), "{err}");
        }
    }

    #[test]
    fn the_position_is_the_number_of_assistant_turns() {
        let text = "tool a {\"x\": 1}\nsleep 40\nsay bye now\nsleep 9";
        let first = answer(text, 0, 3).unwrap();
        assert_eq!(first.delay, Duration::ZERO);
        assert_eq!(first.completion.finish, Finish::ToolCall);
        assert_eq!(
            first.completion.output,
            Output::ToolCall {
                id: "call_1".into(),
                name: "a".into(),
                arguments: "{\"x\": 1}".into(),
            }
        );
        assert_eq!(first.completion.prompt_tokens, 3);
        assert_eq!(first.completion.completion_tokens, 3);
        let second = answer(text, 1, 3).unwrap();
        assert_eq!(second.delay, ms(40));
        assert_eq!(second.completion.text(), "bye now");
        assert_eq!(second.completion.finish, Finish::Stop);
        assert_eq!(second.completion.completion_tokens, 2);
        for past_the_end in [2, 7] {
            let done = answer(text, past_the_end, 3).unwrap();
            assert_eq!(done.delay, ms(9));
            assert_eq!(done.completion.text(), "done");
        }
    }

    #[test]
    fn an_empty_script_is_done_at_once() {
        let done = answer("", 0, 0).unwrap();
        assert_eq!(done.completion.text(), "done");
        assert_eq!(done.completion.finish, Finish::Stop);
    }
}
