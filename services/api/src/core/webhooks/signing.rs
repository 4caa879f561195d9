//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the secret is `whsec_`
//! and the base64 of 32 random bytes; each attempt carries `webhook-id`, `webhook-timestamp`
//! (Unix seconds) and `webhook-signature: v1,<base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))>`,
//! where the key is the secret's bytes (base64-decoded after the prefix).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const PREFIX: &str = "whsec_";

/// A new signing secret.
pub fn generate() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// The `webhook-signature` value for one attempt; `None` when the secret is not a `whsec_`
/// secret (which only a corrupted row could hold).
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = STANDARD
        .decode(secret.expose_secret().strip_prefix(PREFIX)?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_reference_vector() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn generated_secrets_have_32_bytes() {
        let secret = generate();
        let raw = secret.expose_secret().strip_prefix(PREFIX).unwrap();
        assert_eq!(STANDARD.decode(raw).unwrap().len(), 32);
        assert!(sign(&secret, "x", 1, "{}").is_some());
        assert!(sign(&SecretString::from("nope"), "x", 1, "{}").is_none());
    }
}
