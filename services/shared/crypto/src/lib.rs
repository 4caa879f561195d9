//! AES-256-GCM envelope encryption with key ids, for secrets at rest (tenants' provider
//! credentials).
//!
//! Keys are derived from the operator's `ENCRYPTION_MASTER_KEY` with HKDF-SHA256, so the master
//! key itself never touches data. Each ciphertext is stored beside the id of the key that sealed
//! it; the id is a fingerprint of the derived key (`k1:` and 16 hex digits), so it names the key
//! without revealing it and a keyring holding several master keys (during a rotation) can open
//! whatever any of them sealed. The stored form is `nonce (12 bytes) || ciphertext || tag`.
//! Associated data (the credential's id) binds a ciphertext to its row: copied onto another row
//! it no longer opens.

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

const NONCE_LEN: usize = 12;
/// HKDF salt and labels: changing them changes every key, so they never change.
const SALT: &[u8] = b"switchboard/crypto/v1";
const ENCRYPTION_INFO: &[u8] = b"provider-credentials";
const FINGERPRINT_INFO: &[u8] = b"key-id";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error(
        "no key with id {0} in the keyring: was ENCRYPTION_MASTER_KEY changed without a rotation?"
    )]
    UnknownKey(String),
    #[error("the ciphertext does not open with its key (corrupted, or moved from another row)")]
    Corrupt,
    #[error("the decrypted secret is not UTF-8")]
    NotUtf8,
    #[error("the secret is too large to seal")]
    TooLarge,
}

/// A sealed secret: what is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

struct DataKey {
    cipher: Aes256Gcm,
}

/// The keys derived from the current master key and any older ones still being rotated out.
/// New secrets are always sealed with the current one.
pub struct Keyring {
    current: String,
    keys: HashMap<String, DataKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("keys", &ids)
            .finish()
    }
}

impl Keyring {
    /// A keyring that seals with `current` and still opens what `previous` master keys sealed.
    pub fn new(current: &SecretString, previous: &[SecretString]) -> Self {
        let (current_id, current_key) = derive(current);
        let mut keys = HashMap::from([(current_id.clone(), current_key)]);
        for master in previous {
            let (id, key) = derive(master);
            keys.entry(id).or_insert(key);
        }
        Self {
            current: current_id,
            keys,
        }
    }

    /// The id of the key new secrets are sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Whether this keyring can open what `key_id` sealed.
    pub fn knows(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Seals `plaintext`, bound to `aad` (for a credential: its id).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| CryptoError::UnknownKey(self.current.clone()))?;
        let body = key
            .cipher
            .encrypt(
                &nonce_bytes.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::TooLarge)?;
        let mut ciphertext = Vec::with_capacity(NONCE_LEN + body.len());
        ciphertext.extend_from_slice(&nonce_bytes);
        ciphertext.extend_from_slice(&body);
        Ok(Sealed {
            key_id: self.current.clone(),
            ciphertext,
        })
    }

    /// Seals a text secret.
    pub fn seal_str(&self, secret: &SecretString, aad: &[u8]) -> Result<Sealed, CryptoError> {
        self.seal(secret.expose_secret().as_bytes(), aad)
    }

    /// Opens what `seal` produced with the same `aad`.
    pub fn open(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if ciphertext.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Corrupt);
        }
        let (nonce_bytes, body) = ciphertext.split_at(NONCE_LEN);
        let nonce_array: [u8; NONCE_LEN] =
            nonce_bytes.try_into().map_err(|_| CryptoError::Corrupt)?;
        key.cipher
            .decrypt(&nonce_array.into(), Payload { msg: body, aad })
            .map_err(|_| CryptoError::Corrupt)
    }

    /// Opens a text secret.
    pub fn open_str(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<SecretString, CryptoError> {
        let bytes = self.open(key_id, ciphertext, aad)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| CryptoError::NotUtf8)
    }
}

/// HKDF-SHA256 (RFC 5869) for one 32-byte output block.
fn hkdf(ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let prk = hmac_sha256(SALT, &[ikm]);
    hmac_sha256(&prk, &[info, &[1]])
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn derive(master: &SecretString) -> (String, DataKey) {
    let ikm = master.expose_secret().as_bytes();
    let key_bytes = hkdf(ikm, ENCRYPTION_INFO);
    let fingerprint = hkdf(&key_bytes, FINGERPRINT_INFO);
    let id = format!("k1:{}", hex(&fingerprint[..8]));
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key_bytes));
    (id, DataKey { cipher })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    const A: &str = "master-key-a-0123456789abcdef-0123456789";
    const B: &str = "master-key-b-0123456789abcdef-0123456789";

    #[test]
    fn a_sealed_secret_opens_with_the_same_aad() {
        let ring = Keyring::new(&secret(A), &[]);
        let sealed = ring.seal_str(&secret("sk-live-abc"), b"row-1").unwrap();
        assert_eq!(sealed.key_id, ring.current_key_id());
        assert!(!sealed.ciphertext.windows(11).any(|w| w == b"sk-live-abc"));
        let opened = ring
            .open_str(&sealed.key_id, &sealed.ciphertext, b"row-1")
            .unwrap();
        assert_eq!(opened.expose_secret(), "sk-live-abc");
    }

    #[test]
    fn another_aad_or_a_flipped_bit_does_not_open() {
        let ring = Keyring::new(&secret(A), &[]);
        let sealed = ring.seal(b"secret", b"row-1").unwrap();
        assert_eq!(
            ring.open(&sealed.key_id, &sealed.ciphertext, b"row-2"),
            Err(CryptoError::Corrupt)
        );
        let mut flipped = sealed.ciphertext.clone();
        flipped[NONCE_LEN + 1] ^= 1;
        assert_eq!(
            ring.open(&sealed.key_id, &flipped, b"row-1"),
            Err(CryptoError::Corrupt)
        );
        assert_eq!(
            ring.open(&sealed.key_id, &sealed.ciphertext[..10], b"row-1"),
            Err(CryptoError::Corrupt)
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let ring = Keyring::new(&secret(A), &[]);
        assert_ne!(
            ring.seal(b"same", b"").unwrap().ciphertext,
            ring.seal(b"same", b"").unwrap().ciphertext
        );
    }

    #[test]
    fn key_ids_are_stable_and_differ_per_master_key() {
        let a1 = Keyring::new(&secret(A), &[]);
        let a2 = Keyring::new(&secret(A), &[]);
        let b = Keyring::new(&secret(B), &[]);
        assert_eq!(a1.current_key_id(), a2.current_key_id());
        assert_ne!(a1.current_key_id(), b.current_key_id());
        assert!(a1.current_key_id().starts_with("k1:") && a1.current_key_id().len() == 19);
    }

    #[test]
    fn a_rotating_keyring_opens_old_secrets_and_seals_with_the_new_key() {
        let old = Keyring::new(&secret(A), &[]);
        let sealed = old.seal(b"secret", b"row").unwrap();
        let rotating = Keyring::new(&secret(B), &[secret(A)]);
        assert_eq!(
            rotating
                .open(&sealed.key_id, &sealed.ciphertext, b"row")
                .unwrap(),
            b"secret"
        );
        assert_ne!(rotating.seal(b"x", b"").unwrap().key_id, sealed.key_id);
        let new_only = Keyring::new(&secret(B), &[]);
        assert_eq!(
            new_only.open(&sealed.key_id, &sealed.ciphertext, b"row"),
            Err(CryptoError::UnknownKey(sealed.key_id.clone()))
        );
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let ring = Keyring::new(&secret(A), &[]);
        let text = format!("{ring:?} {:?}", ring.seal(b"secret", b"").unwrap());
        assert!(!text.contains(A) && !text.contains("secret\""));
    }
}
