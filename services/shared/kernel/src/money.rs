//! Money: an integer number of micro-dollars. There is no floating point on the money path;
//! prices are micro-dollars per million tokens, and cost is computed with integer arithmetic
//! that rounds up, so a request is never charged less than its tokens cost.

use std::fmt;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Micro-dollars: 1 USD = 1,000,000 micros.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const PER_DOLLAR: i64 = 1_000_000;

    /// Whole dollars, for configuration such as `DEFAULT_BUDGET_USD`.
    pub const fn from_dollars(dollars: i64) -> Self {
        Micros(dollars.saturating_mul(Self::PER_DOLLAR))
    }

    /// The cost of `tokens` at `price_per_million` micros per million tokens, rounded up.
    /// Computed in i128 so that no realistic count or price can overflow.
    pub fn for_tokens(tokens: u64, price_per_million: Micros) -> Micros {
        let product = i128::from(tokens) * i128::from(price_per_million.0);
        let rounded_up = (product + 999_999).div_euclid(1_000_000);
        Micros(i64::try_from(rounded_up).unwrap_or(i64::MAX))
    }
}

/// A model's price in micro-dollars per million tokens, one rate per kind of token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub input: Micros,
    pub cached_input: Micros,
    pub output: Micros,
}

impl Price {
    /// The cost of a call. `input_tokens` includes the cached ones (as providers report it);
    /// those are charged at the cached rate. Each part is rounded up on its own, so the gateway
    /// and the ledger, both using this, always agree to the micro.
    pub fn cost(&self, input_tokens: u64, cached_input_tokens: u64, output_tokens: u64) -> Micros {
        let cached = cached_input_tokens.min(input_tokens);
        Micros::for_tokens(input_tokens - cached, self.input)
            + Micros::for_tokens(cached, self.cached_input)
            + Micros::for_tokens(output_tokens, self.output)
    }
}

impl Micros {
    /// Dollars written in decimal (`"0.5"`, `"12"`, `"1.250000"`, or with an exponent as
    /// JSON writes small and large numbers: `"1e-6"`, `"2.5e-5"`) as micros, exactly: at most
    /// six decimals, no sign. A JSON number in an API body is read through its text, so no
    /// binary float ever rounds a budget.
    pub fn parse_usd(text: &str) -> Option<Micros> {
        let (mantissa, exponent) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (mantissa.contains('.') && !digits(fraction)) {
            return None;
        }
        // The value is `all_digits × 10^(exponent − fraction digits)` dollars; in micros the
        // power is 6 more. It must not leave a fraction of a micro.
        let all: String = format!("{whole}{fraction}");
        let all = all.trim_start_matches('0');
        let fraction_len = i32::try_from(fraction.len()).ok()?;
        let shift = exponent.checked_add(6)?.checked_sub(fraction_len)?;
        if all.is_empty() {
            return Some(Micros::ZERO);
        }
        if shift >= 0 {
            let shift = u32::try_from(shift).ok()?;
            let value: i64 = all.parse().ok()?;
            value.checked_mul(10_i64.checked_pow(shift)?).map(Micros)
        } else {
            let cut = usize::try_from(-shift).ok()?;
            let (kept, dropped) = all.split_at(all.len().checked_sub(cut)?);
            if dropped.bytes().any(|b| b != b'0') {
                return None;
            }
            if kept.is_empty() {
                return Some(Micros::ZERO);
            }
            kept.parse().ok().map(Micros)
        }
    }
}

impl Add for Micros {
    type Output = Micros;

    fn add(self, rhs: Micros) -> Micros {
        Micros(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Micros {
    fn add_assign(&mut self, rhs: Micros) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Micros {
    /// Dollars with six decimals, e.g. `$1.250000`; exact, no float involved.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_parse_exactly_or_not_at_all() {
        assert_eq!(Micros::parse_usd("0.5"), Some(Micros(500_000)));
        assert_eq!(Micros::parse_usd("12"), Some(Micros(12_000_000)));
        assert_eq!(Micros::parse_usd("0.000001"), Some(Micros(1)));
        assert_eq!(Micros::parse_usd("1.250000"), Some(Micros(1_250_000)));
        assert_eq!(Micros::parse_usd("1e-6"), Some(Micros(1)));
        assert_eq!(Micros::parse_usd("2.5e-5"), Some(Micros(25)));
        assert_eq!(Micros::parse_usd("1e3"), Some(Micros(1_000_000_000)));
        assert_eq!(Micros::parse_usd("12.0"), Some(Micros(12_000_000)));
        assert_eq!(Micros::parse_usd("0"), Some(Micros(0)));
        for bad in [
            "",
            ".5",
            "1.",
            "-1",
            "1e-7",
            "0.0000001",
            "1.2.3",
            "abc",
            "99999999999999",
            "1e99",
            "1e",
        ] {
            assert_eq!(Micros::parse_usd(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_cost_rounds_up_to_the_next_micro() {
        // $2.50 per million tokens = 2_500_000 micros per million: one token costs 2.5 micros.
        assert_eq!(Micros::for_tokens(1, Micros(2_500_000)), Micros(3));
        assert_eq!(Micros::for_tokens(2, Micros(2_500_000)), Micros(5));
        assert_eq!(Micros::for_tokens(0, Micros(2_500_000)), Micros(0));
        assert_eq!(
            Micros::for_tokens(1_000_000, Micros(2_500_000)),
            Micros(2_500_000)
        );
    }

    #[test]
    fn huge_counts_saturate_instead_of_wrapping() {
        assert_eq!(
            Micros::for_tokens(u64::MAX, Micros(i64::MAX)),
            Micros(i64::MAX)
        );
    }

    #[test]
    fn a_call_costs_each_kind_of_token_at_its_rate() {
        // $2.50 in, $1.25 cached in, $10 out per million tokens.
        let price = Price {
            input: Micros(2_500_000),
            cached_input: Micros(1_250_000),
            output: Micros(10_000_000),
        };
        // 1,000 input of which 400 cached, 200 output: 600 × 2.5 + 400 × 1.25 + 200 × 10 = 4,000 micros.
        assert_eq!(price.cost(1_000, 400, 200), Micros(4_000));
        // Cached tokens never exceed the input they are part of.
        assert_eq!(price.cost(10, 50, 0), Micros(13));
        assert_eq!(price.cost(0, 0, 0), Micros(0));
    }

    #[test]
    fn displays_exact_dollars() {
        assert_eq!(Micros(1_250_000).to_string(), "$1.250000");
        assert_eq!(Micros(-5).to_string(), "-$0.000005");
        assert_eq!(Micros::from_dollars(100).to_string(), "$100.000000");
    }
}
