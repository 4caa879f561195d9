//! Field checks that collect every problem of a request, so one 422 names them all.

use crate::error::{ApiError, ApiResult, FieldError};

#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.0.push(FieldError {
                field: field.to_owned(),
                message: message.into(),
            });
        }
        self
    }

    /// Text of `min..=max` characters without control characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let chars = value.chars().count();
        if chars < min || chars > max {
            self.check(
                false,
                field,
                format!("must be {min} to {max} characters long (it is {chars})"),
            )
        } else {
            self.check(
                !value.chars().any(char::is_control),
                field,
                "must not contain control characters",
            )
        }
    }

    pub fn email(&mut self, field: &str, value: &str) -> &mut Self {
        let ok = value.len() <= 320
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        self.check(
            ok,
            field,
            "must be an e-mail address such as ada@example.com",
        )
    }

    pub fn password(&mut self, field: &str, value: &str) -> &mut Self {
        let chars = value.chars().count();
        self.check(
            (12..=256).contains(&chars),
            field,
            "must be 12 to 256 characters long",
        )
    }

    /// A URL the platform will call for a tenant (a webhook, a provider's `base_url`): its length,
    /// its shape and, unless `allow_private`, every address it resolves to now (`sb-egress`);
    /// the caller's HTTP client checks again when it connects.
    pub async fn outbound_url(&mut self, field: &str, url: &str, allow_private: bool) -> &mut Self {
        self.text(field, url, 1, 2000);
        if let Err(refused) = sb_egress::check_url(url, allow_private).await {
            self.check(false, field, refused.to_string());
        }
        self
    }

    pub fn slug(&mut self, field: &str, value: &str) -> &mut Self {
        let ok = (1..=63).contains(&value.len())
            && value
                .bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && b == b'-'));
        self.check(
            ok,
            field,
            "must be 1 to 63 lowercase letters, digits or dashes, not starting with a dash",
        )
    }

    pub fn finish(&mut self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(std::mem::take(&mut self.0)))
        }
    }
}
