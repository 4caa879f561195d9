//! The NUL character (U+0000) refused at the edge, wherever a request carries text: JSON
//! bodies, query strings and path segments. Postgres cannot store it in `text` or `jsonb`
//! (`invalid byte sequence for encoding "UTF8": 0x00`, `unsupported Unicode escape sequence`),
//! so a NUL that reached a query used to end in a 500; now it is a 422 naming the field, before
//! any work is done.
//!
//! The checks are scans of the raw request: a JSON body can only carry a NUL as the escape
//! `\u0000` (a raw control byte is not JSON), a query string or a path only as `%00`. Only when
//! that scan finds one is the input parsed again to name the field, so a normal request pays one
//! pass over its bytes and nothing more. Headers cannot carry one at all (`http` refuses it).

use serde_json::Value;

use crate::error::ApiError;

const MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// A JSON body: 422 naming the first field (`tenant.slug`, `models[2]`) whose value or key
/// holds a NUL. A body that is not JSON passes, for the decoder to refuse.
pub fn check_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !has_escaped_nul(bytes) {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    let field = find_in_value(&value, String::new()).unwrap_or_default();
    Err(ApiError::invalid(
        if field.is_empty() { "body" } else { &field },
        MESSAGE,
    ))
}

/// A query string: 422 naming the parameter whose name or value holds `%00`.
pub fn check_query(query: Option<&str>) -> Result<(), ApiError> {
    let Some(query) = query.filter(|q| q.contains("%00")) else {
        return Ok(());
    };
    let name = query
        .split('&')
        .find(|pair| pair.contains("%00"))
        .and_then(|pair| pair.split('=').next())
        .filter(|name| !name.contains("%00") && !name.is_empty())
        .unwrap_or("query");
    Err(ApiError::invalid(name, MESSAGE))
}

/// Path parameters, already percent-decoded: 422 naming the first one that holds a NUL.
pub fn check_path<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ApiError> {
    match params.into_iter().find(|(_, value)| value.contains('\0')) {
        Some((name, _)) => Err(ApiError::invalid(name, MESSAGE)),
        None => Ok(()),
    }
}

/// Text that arrives some other way: a GraphQL string literal (`action: "a\u0000"` is
/// escaped once more inside the JSON body, so the body scan lets it through to the resolver,
/// and the core function it calls checks it here).
pub fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(text) if text.contains('\0') => Err(ApiError::invalid(field, MESSAGE)),
        _ => Ok(()),
    }
}

/// Whether `bytes` hold the JSON escape `\u0000`: the six bytes, after an even number of
/// backslashes (`\\u0000` is a backslash and the text `u0000`, which is harmless).
fn has_escaped_nul(bytes: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    let mut from = 0;
    while let Some(i) = bytes
        .get(from..)
        .and_then(|rest| rest.windows(ESCAPE.len()).position(|w| w == ESCAPE))
    {
        let at = from + i;
        let before = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if before % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The path of the first string (value or key) holding a NUL, spelled as the decoder's
/// errors spell it (`a.b[0].c`); `Some("")` when it is the body itself.
fn find_in_value(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_in_value(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(path.clone());
            }
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            find_in_value(item, inner)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> Option<String> {
        check_json(body.as_bytes())
            .err()
            .map(|e| e.errors[0].field.clone())
    }

    #[test]
    fn names_the_field_that_holds_a_nul() {
        assert_eq!(
            field(r#"{"email": "a\u0000@b.c"}"#).as_deref(),
            Some("email")
        );
        assert_eq!(
            field(r#"{"tenant": {"slug": "x", "name": "\u0000"}}"#).as_deref(),
            Some("tenant.name")
        );
        assert_eq!(
            field(r#"{"models": ["a", "b\u0000"]}"#).as_deref(),
            Some("models[1]")
        );
        assert_eq!(
            field(r#"{"meta": {"k\u0000": 1}}"#).as_deref(),
            Some("meta")
        );
        assert_eq!(field(r#""\u0000""#).as_deref(), Some("body"));
    }

    #[test]
    fn lets_harmless_text_through() {
        assert_eq!(field(r#"{"name": "a\\u0000b"}"#), None);
        assert_eq!(field(r#"{"name": "a\\\\u0000b"}"#), None);
        assert_eq!(field(r#"{"name": "u0000 \u0001"}"#), None);
        assert_eq!(field(r#"{"name": "a\\\u0000b"}"#).as_deref(), Some("name"));
        assert!(check_query(Some("q=a%2500b&limit=5")).is_ok());
        assert!(check_query(None).is_ok());
    }

    #[test]
    fn names_the_query_parameter() {
        let e = check_query(Some("limit=5&action=a%00b")).unwrap_err();
        assert_eq!(e.errors[0].field, "action");
        let e = check_query(Some("a%00=1")).unwrap_err();
        assert_eq!(e.errors[0].field, "query");
        let e = check_path([("tenant_id", "x"), ("team", "a\0b")]).unwrap_err();
        assert_eq!(e.errors[0].field, "team");
    }
}
