//! A configuration error: which variable, what is wrong, how to fix it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    /// One line, e.g. `JWT_SECRET is too short (12 characters): set it to …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.variable, self.problem, self.fix)
    }
}

impl std::error::Error for ConfigError {}
