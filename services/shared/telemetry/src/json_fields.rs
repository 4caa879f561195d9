//! Span fields as one JSON object, written straight out.
//!
//! The JSON log format keeps each span's fields as a JSON object string, made when the span is
//! created, and puts it on every line logged inside the span (that is how the request id gets
//! on every line). `tracing-subscriber`'s own `JsonFields` first collects the fields into a map
//! of `serde_json::Value`s and then serialises the map: for the span every request opens, that
//! was more work than the rest of the span together. This writes the same object directly,
//! fields in the order they were declared.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// The span field formatter of the JSON log format.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        write_object(&mut writer, "", fields)
    }

    /// Fields recorded after creation go inside the object already written.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let before = current.fields.trim_end();
        let Some(inner) = before.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            return write_object(&mut current.fields, "", fields);
        };
        let inner = inner.to_owned();
        current.fields.clear();
        write_object(&mut current.fields, &inner, fields)
    }
}

/// Writes `{` + `inner` (fields already written, possibly none) + the fields + `}`.
fn write_object<W: Write, R: RecordFields>(out: &mut W, inner: &str, fields: R) -> fmt::Result {
    out.write_char('{')?;
    out.write_str(inner)?;
    let mut visitor = Visitor {
        out,
        first: inner.is_empty(),
        result: Ok(()),
    };
    fields.record(&mut visitor);
    visitor.result?;
    visitor.out.write_char('}')
}

struct Visitor<'a, W> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> Visitor<'_, W> {
    /// Writes `"name":` and lets `value` write the value; the first error sticks.
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            write_str(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Visitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| write_str(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| write_string(out, format_args!("{value:?}")));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.entry(field, |out| write_string(out, format_args!("{value}")));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        if value.is_finite() {
            self.entry(field, |out| write!(out, "{value}"));
        } else {
            self.entry(field, |out| out.write_str("null"));
        }
    }
}

/// Writes `text` as a JSON string.
fn write_str<W: Write>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Writes what `text` formats to as a JSON string, escaping as it goes (no `String` between).
fn write_string<W: Write>(out: &mut W, text: fmt::Arguments<'_>) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_fmt(text)?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct Escaped<'a, W>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text needs no escaping at all: then it goes out whole.
        if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            return self.0.write_str(s);
        }
        // Only ASCII needs escaping, so a byte scan finds every place (the bytes of a
        // multi-byte character are all >= 0x80) and each slice ends on a char boundary.
        let mut plain = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// A subscriber that keeps the span fields it formats, to compare with `serde_json`.
    fn formatted(make: impl FnOnce()) -> serde_json::Value {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .fmt_fields(JsonSpanFields)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, make);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        line["span"].clone()
    }

    #[test]
    fn span_fields_are_one_json_object_with_every_kind_of_value() {
        let span = formatted(|| {
            let error = std::io::Error::other("broke \"badly\"");
            let span = tracing::info_span!(
                "request",
                text = "tab\there \"quoted\" \\ \u{1} é",
                debug = ?("a", 1),
                error = &error as &dyn std::error::Error,
                signed = -3i64,
                unsigned = 7u64,
                yes = true,
                ratio = 0.5f64,
                nan = f64::NAN,
                later = tracing::field::Empty,
            );
            span.record("later", "set after");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(
            span,
            serde_json::json!({
                "name": "request",
                "text": "tab\there \"quoted\" \\ \u{1} é",
                "debug": "(\"a\", 1)",
                "error": "broke \"badly\"",
                "signed": -3,
                "unsigned": 7,
                "yes": true,
                "ratio": 0.5,
                "nan": null,
                "later": "set after",
            })
        );
    }

    #[test]
    fn a_span_without_fields_is_an_empty_object() {
        let span = formatted(|| {
            let span = tracing::info_span!("quiet");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(span, serde_json::json!({"name": "quiet"}));
    }
}
