//! One member of a JSON object, found without parsing the rest: an answer passes through as
//! bytes and only its `usage` is read, so walking its structure is enough. Strings are skipped
//! with `memchr`, nesting is followed with a stack of bits; only the member asked for is parsed
//! (by the caller). Reading a whole answer with serde only to skip it cost more than the rest of
//! metering it.
//!
//! The walk checks the structure (strings closed, brackets matched, members separated) and the
//! top level's plain values; anything it does not follow (a nesting deeper than 64, a repeated
//! name, text that is not an object) makes it give up, and the caller parses in full.

use memchr::memchr2;

/// The text of the member `name` of the object `text`: `Some(Some(value))`, `Some(None)` when
/// the object has no such member, `None` when the walk gave up.
pub fn member<'a>(text: &'a [u8], name: &str) -> Option<Option<&'a [u8]>> {
    let mut found = None;
    let mut repeated = false;
    members(text, |key, value| {
        if key == name.as_bytes() {
            repeated |= found.replace(value).is_some();
        }
    })?;
    (!repeated).then_some(found)
}

/// An integer member as serde reads one leniently: the integer, or 0 for any other value.
pub fn integer(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

/// Calls `each` with the name (as written, escapes and all) and the text of each member of the
/// object `text`, in order; `None` when the walk gave up.
pub fn members<'a>(text: &'a [u8], mut each: impl FnMut(&'a [u8], &'a [u8])) -> Option<()> {
    let mut i = skip_space(text, 0);
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(text, i + 1);
    if text.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if text.get(i) != Some(&b'"') {
                return None;
            }
            let key_end = string_end(text, i)?;
            let key = &text[i + 1..key_end - 1];
            i = skip_space(text, key_end);
            if text.get(i) != Some(&b':') {
                return None;
            }
            let start = skip_space(text, i + 1);
            i = value_end(text, start)?;
            each(key, &text[start..i]);
            i = skip_space(text, i);
            match text.get(i)? {
                b',' => i = skip_space(text, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(text, i) == text.len()).then_some(())
}

fn skip_space(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = text.get(i) {
        i += 1;
    }
    i
}

/// Where the string starting at `i` (its opening quote) ends: just after its closing quote.
fn string_end(text: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let k = j + memchr2(b'"', b'\\', text.get(j..)?)?;
        if text[k] == b'"' {
            return Some(k + 1);
        }
        // An escape: the next byte is escaped, whatever it is.
        j = k + 2;
    }
}

/// Where the value starting at `i` ends.
fn value_end(text: &[u8], i: usize) -> Option<usize> {
    match text.get(i)? {
        b'"' => string_end(text, i),
        b'{' | b'[' => nested_end(text, i),
        _ => {
            let end = text[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .map_or(text.len(), |n| i + n);
            plain(&text[i..end]).then_some(end)
        }
    }
}

/// Whether `word` is `true`, `false`, `null` or made of a number's characters.
fn plain(word: &[u8]) -> bool {
    matches!(word, b"true" | b"false" | b"null")
        || (!word.is_empty()
            && word
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')))
}

/// Where the object or array starting at `i` ends, its brackets matched (one bit per level:
/// set for an object).
fn nested_end(text: &[u8], i: usize) -> Option<usize> {
    let (mut open, mut depth) = (0u64, 0u32);
    let mut j = i;
    loop {
        match text.get(j)? {
            b'"' => {
                j = string_end(text, j)?;
                continue;
            }
            opening @ (b'{' | b'[') => {
                if depth == 64 {
                    return None;
                }
                open = (open << 1) | u64::from(*opening == b'{');
                depth += 1;
            }
            closing @ (b'}' | b']') => {
                if depth == 0 || (open & 1 == 1) != (*closing == b'}') {
                    return None;
                }
                open >>= 1;
                depth -= 1;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn usage(text: &str) -> Option<Option<Value>> {
        member(text.as_bytes(), "usage")
            .map(|found| found.map(|v| serde_json::from_slice(v).expect("a whole value")))
    }

    #[test]
    fn finds_the_member_as_serde_reads_it() {
        let samples = [
            r#"{"usage":{"prompt_tokens":1}}"#,
            r#" { "id" : "x", "usage" : { "a" : [1, {"b": "}]"}] } , "z": null } "#,
            r#"{"choices":[{"message":{"content":"a \"usage\": {\"x\":1} \\"}}],"usage":{"t":2}}"#,
            r#"{"nested":{"usage":{"wrong":1}},"usage":{"right":1}}"#,
            r#"{"usage":null,"n":-1.5e3,"t":true,"f":false}"#,
            r#"{"usage":7}"#,
            r#"{"usage":"text with \u00e9 and \\\" quotes"}"#,
            "{\"u\":\"caf\u{e9}\",\"usage\":[]}",
        ];
        for sample in samples {
            let serde: Value = serde_json::from_str(sample).unwrap();
            assert_eq!(usage(sample), Some(serde.get("usage").cloned()), "{sample}");
        }
    }

    #[test]
    fn integers_are_read_as_serde_reads_them_leniently() {
        for (text, n) in [
            ("12", 12),
            ("-3", -3),
            ("5.0", 0),
            ("1e3", 0),
            ("99999999999999999999", 0),
            ("\"12\"", 0),
            ("null", 0),
            ("{}", 0),
        ] {
            let serde = serde_json::from_str::<Value>(text)
                .unwrap()
                .as_i64()
                .unwrap_or(0);
            assert_eq!((integer(text.as_bytes()), serde), (n, n), "{text}");
        }
    }

    #[test]
    fn no_member_is_none() {
        assert_eq!(usage("{}"), Some(None));
        assert_eq!(usage(r#"{"id":"usage","x":{"usage":1}}"#), Some(None));
    }

    #[test]
    fn gives_up_on_what_it_does_not_follow() {
        for text in [
            "",
            "not json",
            "[1]",
            r#"{"usage":1,"usage":2}"#,
            r#"{"usage":{"a":1]}"#,
            r#"{"usage":{"a":"unclosed}}"#,
            r#"{"usage":{}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} trailing"#,
            r#"{"a":"\"#,
        ] {
            assert_eq!(member(text.as_bytes(), "usage"), None, "{text}");
        }
        let deep = format!("{{\"usage\":{}{}}}", "[".repeat(65), "]".repeat(65));
        assert_eq!(member(deep.as_bytes(), "usage"), None);
        let deep_enough = format!("{{\"usage\":{}{}}}", "[".repeat(64), "]".repeat(64));
        assert!(member(deep_enough.as_bytes(), "usage").unwrap().is_some());
    }
}
