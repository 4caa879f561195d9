//! Splitting a command line into argv the way a POSIX shell quotes words, and nothing more: no
//! expansion of any kind. Anything that a shell would treat as syntax (`;`, `|`, `&`, `$`, a
//! backtick, `<`, `>`, parentheses, a newline) is refused rather than passed on literally, so
//! the model learns at once that it is not talking to a shell. Inside single quotes everything
//! is literal; inside double quotes `$` and backticks are refused (a shell would expand them).

/// Why a command line was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SplitError {
    /// Shell syntax that is not supported, with the offending text.
    Syntax(String),
    Unterminated(char),
    Empty,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax(what) => write!(
                f,
                "{what} is shell syntax, and commands run without a shell: one command, no pipes, \
                 redirections, `;`/`&&`, variables or substitutions (quote it if it is meant \
                 literally, e.g. grep 'a|b')"
            ),
            Self::Unterminated(quote) => write!(f, "unterminated {quote} quote"),
            Self::Empty => write!(f, "empty command"),
        }
    }
}

/// Characters that are syntax outside quotes.
const METACHARACTERS: &[char] = &[';', '|', '&', '$', '`', '<', '>', '(', ')'];

/// The words of `line`.
pub(crate) fn split(line: &str) -> Result<Vec<String>, SplitError> {
    if let Some(c) = line.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        let name = match c {
            '\n' => "a newline",
            '\r' => "a carriage return",
            _ => "a NUL byte",
        };
        return Err(SplitError::Syntax(name.to_string()));
    }
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started even if it is empty so far ('' is an empty argument).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                let next = chars.next().ok_or(SplitError::Unterminated('\\'))?;
                word.push(next);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::Unterminated('\'')),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('$') | Some('`') => {
                            return Err(SplitError::Syntax(
                                "`$` or a backtick inside double quotes".into(),
                            ));
                        }
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err(SplitError::Unterminated('"')),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::Unterminated('"')),
                    }
                }
            }
            c if METACHARACTERS.contains(&c) => {
                return Err(SplitError::Syntax(format!("`{c}`")));
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn quotes_like_a_shell_without_expanding() {
        assert_eq!(ok("ls -la  src"), ["ls", "-la", "src"]);
        assert_eq!(ok("grep 'a|b' f"), ["grep", "a|b", "f"]);
        assert_eq!(ok(r#"echo "it's \"x\"" ''"#), ["echo", "it's \"x\"", ""]);
        assert_eq!(ok(r"echo a\ b \;"), ["echo", "a b", ";"]);
        assert_eq!(ok("echo *.rs ~"), ["echo", "*.rs", "~"]);
        assert_eq!(ok(r#"echo "a\nb""#), ["echo", r"a\nb"]);
    }

    #[test]
    fn refuses_shell_syntax() {
        for line in [
            "ls; rm x",
            "cat f | sh",
            "ls && id",
            "echo $HOME",
            "echo `id`",
            "echo \"$(id)\"",
            "cat < /etc/passwd",
            "echo x > f",
            "ls\nid",
            "(ls)",
            "sleep 1 &",
        ] {
            assert!(
                matches!(split(line), Err(SplitError::Syntax(_))),
                "{line:?}"
            );
        }
        assert_eq!(split("echo 'x"), Err(SplitError::Unterminated('\'')));
        assert_eq!(split("  "), Err(SplitError::Empty));
    }
}
