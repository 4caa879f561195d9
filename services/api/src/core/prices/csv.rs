//! The CSV of `switchboard prices import`: a header naming the columns, then one price a line.
//!
//! ```text
//! # Public list prices, USD per million tokens. Lines starting with # are skipped.
//! provider,model,effective_from,input_usd_per_mtok,cached_input_usd_per_mtok,output_usd_per_mtok
//! openai,gpt-4o,2024-10-01,2.50,1.25,10.00
//! openai,gpt-4.1,,2.00,0.50,8.00
//! ```
//!
//! Columns, in any order: `provider`, `model`, and each price in one of two units:
//! `*_usd_per_mtok` (dollars per million tokens, as price lists print them, read exactly: at
//! most six decimals, a leading `$` allowed) or `*_micros_per_mtok` (whole micro-dollars) for
//! `input`, `output` and, optionally, `cached_input` (the input price when absent). Optional:
//! `effective_from` (`YYYY-MM-DD` for midnight UTC, or RFC 3339; empty for "from now") and
//! `currency` (only `USD`). Fields may be quoted (`"a,b"`, `""` for a quote).

use super::{ImportRow, NewPrice};
use chrono::{DateTime, NaiveDate, Utc};
use sb_kernel::Micros;

/// A problem with the file, by line.
#[derive(Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What each column of the header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Provider,
    Model,
    EffectiveFrom,
    Currency,
    /// A price (0 input, 1 cached input, 2 output), in dollars or in micros.
    Price(usize, Unit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Usd,
    Micros,
}

const PRICES: [&str; 3] = ["input", "cached_input", "output"];

fn column(name: &str) -> Option<Column> {
    match name {
        "provider" => return Some(Column::Provider),
        "model" => return Some(Column::Model),
        "effective_from" => return Some(Column::EffectiveFrom),
        "currency" => return Some(Column::Currency),
        _ => {}
    }
    let (price, unit) = if let Some(p) = name.strip_suffix("_usd_per_mtok") {
        (p, Unit::Usd)
    } else {
        (name.strip_suffix("_micros_per_mtok")?, Unit::Micros)
    };
    let index = PRICES.iter().position(|p| *p == price)?;
    Some(Column::Price(index, unit))
}

/// Every row of `text`, or every problem found (nothing is imported then).
pub fn parse(text: &str) -> Result<Vec<ImportRow>, Vec<LineError>> {
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut header: Option<Vec<Column>> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fail = |message: String| LineError { line, message };
        let fields = match split(trimmed) {
            Ok(fields) => fields,
            Err(message) => {
                errors.push(fail(message));
                continue;
            }
        };
        match &header {
            None => match read_header(&fields) {
                Ok(columns) => header = Some(columns),
                // Without a header no line can be read.
                Err(message) => return Err(vec![fail(message)]),
            },
            Some(columns) => match read_row(columns, &fields) {
                Ok(price) => rows.push(ImportRow { line, price }),
                Err(message) => errors.push(fail(message)),
            },
        }
    }
    if header.is_none() {
        errors.push(LineError {
            line: 1,
            message: "the file is empty: it needs a header line and one price a line".to_owned(),
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn read_header(fields: &[String]) -> Result<Vec<Column>, String> {
    let mut columns = Vec::with_capacity(fields.len());
    for name in fields {
        let name = name.trim().to_ascii_lowercase();
        let column = column(&name).ok_or_else(|| {
            format!(
                "unknown column {name:?}: expected provider, model, effective_from, currency and \
                 input, cached_input, output each as *_usd_per_mtok or *_micros_per_mtok"
            )
        })?;
        let twice = columns.iter().any(|c| match (c, &column) {
            (Column::Price(a, _), Column::Price(b, _)) => a == b,
            (a, b) => a == b,
        });
        if twice {
            return Err(format!("column {name:?} is given twice (or in both units)"));
        }
        columns.push(column);
    }
    for (needed, present) in [
        ("provider", columns.contains(&Column::Provider)),
        ("model", columns.contains(&Column::Model)),
        ("an input price", has_price(&columns, 0)),
        ("an output price", has_price(&columns, 2)),
    ] {
        if !present {
            return Err(format!("the header has no {needed} column"));
        }
    }
    Ok(columns)
}

fn has_price(columns: &[Column], index: usize) -> bool {
    columns
        .iter()
        .any(|c| matches!(c, Column::Price(i, _) if *i == index))
}

fn read_row(columns: &[Column], fields: &[String]) -> Result<NewPrice, String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "{} fields where the header has {} columns",
            fields.len(),
            columns.len()
        ));
    }
    let mut price = NewPrice {
        provider: String::new(),
        model: String::new(),
        effective_from: None,
        input_micros_per_mtok: 0,
        cached_input_micros_per_mtok: None,
        output_micros_per_mtok: 0,
        currency: None,
    };
    for (column, value) in columns.iter().zip(fields) {
        let value = value.trim();
        match column {
            Column::Provider => price.provider = value.to_owned(),
            Column::Model => price.model = value.to_owned(),
            Column::Currency => {
                price.currency = (!value.is_empty()).then(|| value.to_ascii_uppercase());
            }
            Column::EffectiveFrom => price.effective_from = date(value)?,
            Column::Price(index, unit) => {
                let micros = amount(PRICES[*index], *unit, value)?;
                match (*index, micros) {
                    (0, Some(m)) => price.input_micros_per_mtok = m,
                    (1, m) => price.cached_input_micros_per_mtok = m,
                    (2, Some(m)) => price.output_micros_per_mtok = m,
                    _ => return Err(format!("{} is empty", PRICES[*index])),
                }
            }
        }
    }
    Ok(price)
}

/// A price in micros; None when the field is empty.
fn amount(name: &str, unit: Unit, value: &str) -> Result<Option<i64>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    match unit {
        Unit::Usd => {
            let dollars = value.strip_prefix('$').unwrap_or(value);
            Micros::parse_usd(dollars)
                .map(|m| Some(m.0))
                .ok_or_else(|| {
                    format!(
                        "{name}_usd_per_mtok {value:?} is not an amount in dollars such as 2.50 \
                     (not negative, at most six decimals)"
                    )
                })
        }
        Unit::Micros => value.parse::<i64>().map(Some).map_err(|_| {
            format!("{name}_micros_per_mtok {value:?} is not a whole number of micro-dollars")
        }),
    }
}

/// `YYYY-MM-DD` (midnight UTC) or RFC 3339; None when empty.
fn date(value: &str) -> Result<Option<DateTime<Utc>>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| {
            format!(
                "effective_from {value:?} is not a date (2026-01-31) or a time (2026-01-31T09:00:00Z)"
            )
        })
}

/// `--input 2.50` and the like: dollars per million tokens, exactly, as micros.
pub fn usd_arg(value: &str) -> Result<Micros, String> {
    let dollars = value.strip_prefix('$').unwrap_or(value);
    Micros::parse_usd(dollars).ok_or_else(|| {
        "expected dollars per million tokens such as 2.50 (not negative, at most six decimals)"
            .to_owned()
    })
}

/// `--from 2026-01-31` (midnight UTC) or `--from 2026-01-31T09:00:00Z`.
pub fn date_arg(value: &str) -> Result<DateTime<Utc>, String> {
    date(value.trim())?.ok_or_else(|| "expected a date such as 2026-01-31".to_owned())
}

/// The fields of one line; a quoted field may hold commas, and `""` is a quote.
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "provider,model,effective_from,input_usd_per_mtok,cached_input_usd_per_mtok,output_usd_per_mtok";

    #[test]
    fn a_public_price_list_reads_exactly() {
        let text = format!(
            "# comment\n\n{HEADER}\nopenai,gpt-4o,2024-10-01,$2.50,1.25,10\n\"anthropic\",\"claude, sonnet\",,3,,15\n"
        );
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 4);
        let p = &rows[0].price;
        assert_eq!(
            (
                p.input_micros_per_mtok,
                p.cached_input_micros_per_mtok,
                p.output_micros_per_mtok
            ),
            (2_500_000, Some(1_250_000), 10_000_000)
        );
        assert_eq!(
            p.effective_from.unwrap().to_rfc3339(),
            "2024-10-01T00:00:00+00:00"
        );
        let q = &rows[1].price;
        assert_eq!(q.model, "claude, sonnet");
        assert_eq!(q.effective_from, None);
        assert_eq!(q.cached_input_micros_per_mtok, None);
    }

    #[test]
    fn micros_columns_in_any_order() {
        let text =
            "model,output_micros_per_mtok,provider,input_micros_per_mtok\nm,600000,openai,150000\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows[0].price.output_micros_per_mtok, 600_000);
        assert_eq!(rows[0].price.provider, "openai");
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = format!(
            "{HEADER}\nopenai,a,2024-13-01,1,1,1\nopenai,b,,-1,1,1\nopenai,c,,1,1\nopenai,d,,0.0000001,1,1\nopenai,e,,1,1,1\n"
        );
        let errors = parse(&text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{errors:?}");
        assert!(errors[0].message.contains("effective_from"), "{errors:?}");
        assert!(
            errors[1].message.contains("input_usd_per_mtok"),
            "{errors:?}"
        );
        assert!(errors[2].message.contains("5 fields"), "{errors:?}");
    }

    #[test]
    fn a_bad_header_is_refused_with_what_is_expected() {
        let unknown = parse("provider,model,input_eur_per_mtok,output_usd_per_mtok\n").unwrap_err();
        assert_eq!(unknown[0].line, 1);
        assert!(
            unknown[0].message.contains("input_eur_per_mtok"),
            "{unknown:?}"
        );
        let twice =
            parse("provider,model,input_usd_per_mtok,input_micros_per_mtok,output_usd_per_mtok\n")
                .unwrap_err();
        assert!(twice[0].message.contains("twice"), "{twice:?}");
        let missing = parse("provider,model,input_usd_per_mtok\n").unwrap_err();
        assert!(missing[0].message.contains("output"), "{missing:?}");
        assert!(parse("# only a comment\n").is_err());
        assert!(split("a,\"b").is_err());
    }
}
