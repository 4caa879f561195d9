//! Where values come from: the process environment, or a map in tests. Defaults come from the
//! table in [`crate::vars`], so each default is written down exactly once.

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use secrecy::SecretString;

use crate::error::ConfigError;
use crate::vars;

/// A lookup of configuration variables. Empty values count as unset, because compose files
/// and CI systems often pass `VAR=` for "not configured".
pub struct Source {
    values: HashMap<String, String>,
}

impl Source {
    pub fn env() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let values = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        Self { values }
    }

    /// The value set, else the documented default, else `None`.
    pub fn get(&self, name: &'static str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| vars::default_of(name).map(str::to_owned))
    }

    /// Whether the variable was set explicitly (not defaulted).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn string(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| {
            ConfigError::new(
                name,
                "is not set",
                format!("set it ({})", vars::meaning_of(name)),
            )
        })
    }

    pub fn optional_string(&self, name: &'static str) -> Option<String> {
        self.get(name)
    }

    pub fn parse<T: FromStr>(&self, name: &'static str, expected: &str) -> Result<T, ConfigError> {
        let raw = self.string(name)?;
        raw.trim().parse().map_err(|_| {
            ConfigError::new(
                name,
                format!("is {raw:?}, not {expected}"),
                format!("set it to {expected}"),
            )
        })
    }

    pub fn number<T>(&self, name: &'static str, range: RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("a whole number from {} to {}", range.start(), range.end());
        let value: T = self.parse(name, &expected)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("is {value}, out of range"),
                format!("set it to {expected}"),
            ))
        }
    }

    pub fn optional_number<T>(
        &self,
        name: &'static str,
        range: RangeInclusive<T>,
    ) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.number(name, range).map(Some)
        }
    }

    /// A comma-separated list; blanks dropped.
    pub fn list(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .string(name)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }

    pub fn postgres_url(&self, name: &'static str) -> Result<SecretString, ConfigError> {
        self.url_with_scheme(
            name,
            &["postgres://", "postgresql://"],
            "postgres://USER:PASSWORD@HOST:5432/DATABASE",
        )
    }

    pub fn redis_url(&self, name: &'static str) -> Result<SecretString, ConfigError> {
        self.url_with_scheme(
            name,
            &["redis://", "rediss://"],
            "redis://HOST:6379 (or rediss:// for TLS)",
        )
    }

    pub fn http_url(&self, name: &'static str) -> Result<String, ConfigError> {
        let url = self.string(name)?;
        check_scheme(name, &url, &["http://", "https://"], "http://HOST:PORT")?;
        Ok(url)
    }

    pub fn optional_http_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        if self.get(name).is_none() {
            Ok(None)
        } else {
            self.http_url(name).map(Some)
        }
    }

    fn url_with_scheme(
        &self,
        name: &'static str,
        schemes: &[&str],
        example: &str,
    ) -> Result<SecretString, ConfigError> {
        let url = self.string(name)?;
        check_scheme(name, &url, schemes, example)?;
        Ok(SecretString::from(url))
    }
}

/// URLs may hold passwords, so the error names the variable and never echoes the value.
fn check_scheme(
    name: &'static str,
    url: &str,
    schemes: &[&str],
    example: &str,
) -> Result<(), ConfigError> {
    let after_scheme = schemes.iter().find_map(|s| url.strip_prefix(s));
    match after_scheme {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err(ConfigError::new(
            name,
            format!("is not a URL starting with {}", schemes.join(" or ")),
            format!("set it like {example}"),
        )),
    }
}
