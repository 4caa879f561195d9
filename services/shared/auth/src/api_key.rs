//! Gateway API keys: `sb_live_` followed by 43 base62 characters (256 bits of randomness).
//! Only the SHA-256 of the whole key is stored; the first characters are kept as a visible
//! prefix so people can tell keys apart. The secret is shown once, at creation.

use rand::RngExt;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "sb_live_";
/// How many characters of the key (after `sb_live_`) are shown in listings.
const VISIBLE_CHARS: usize = 4;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 43 base62 characters carry just over 256 bits.
const SECRET_CHARS: usize = 43;

/// A freshly generated key: the secret to show once, and what to store.
pub struct NewApiKey {
    pub secret: String,
    pub prefix: String,
    pub hash: [u8; 32],
}

pub fn generate() -> NewApiKey {
    let mut rng = rand::rng();
    let body: String = (0..SECRET_CHARS)
        .map(|_| char::from(BASE62[rng.random_range(0..BASE62.len())]))
        .collect();
    let secret = format!("{KEY_PREFIX}{body}");
    let prefix = secret[..KEY_PREFIX.len() + VISIBLE_CHARS].to_owned();
    let hash = hash(&secret);
    NewApiKey {
        secret,
        prefix,
        hash,
    }
}

/// The SHA-256 of a presented key, to look it up. A fast hash is right here: the key has 256
/// bits of entropy, so there is nothing for a slow hash to protect against.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `candidate` has the shape of a key (cheap check before any lookup).
pub fn looks_valid(candidate: &str) -> bool {
    candidate.strip_prefix(KEY_PREFIX).is_some_and(|body| {
        body.len() == SECRET_CHARS && body.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let key = generate();
        assert!(key.secret.starts_with("sb_live_"));
        assert_eq!(key.secret.len(), KEY_PREFIX.len() + SECRET_CHARS);
        assert!(looks_valid(&key.secret));
        assert!(key.secret.starts_with(&key.prefix));
        assert_eq!(key.prefix.len(), 12);
        assert_eq!(key.hash, hash(&key.secret));
    }

    #[test]
    fn keys_are_unique_and_malformed_ones_are_rejected() {
        assert_ne!(generate().secret, generate().secret);
        assert!(!looks_valid("sb_live_short"));
        assert!(!looks_valid(
            "sk-0123456789012345678901234567890123456789012"
        ));
        assert!(!looks_valid(&format!("sb_live_{}!", "a".repeat(42))));
    }

    #[test]
    fn hash_is_sha256() {
        // SHA-256("abc"), from FIPS 180-2.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let got: String = hash("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }
}
