//! The two platform secrets. Outside `--demo` they must be set and long; in a demo, missing
//! or short ones are replaced by random throwaway values, and `generated` says so, so the
//! caller can warn that sessions and encrypted credentials will not survive a restart.
//!
//! A process needs only the secrets of the services it runs ([`SecretNeeds`]): the ledger
//! signs no token and opens no credential, so it is not given `JWT_SECRET` or
//! `ENCRYPTION_MASTER_KEY` and must start without them. A secret a process does not need is
//! never read from the environment; a random stand-in takes its place, which nothing in that
//! process uses.

use secrecy::{ExposeSecret, SecretString};

use crate::error::ConfigError;
use crate::source::Source;

/// DESIGN.md: both secrets at least 32 characters.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Clone, Debug)]
pub struct Secrets {
    pub jwt_secret: SecretString,
    pub encryption_master_key: SecretString,
    /// Earlier master keys whose ciphertexts are still opened while `keys rotate` moves them
    /// to the current one (`ENCRYPTION_PREVIOUS_KEYS`).
    pub previous_master_keys: Vec<SecretString>,
    /// Names of the variables that were generated for a demo.
    pub generated: Vec<&'static str>,
}

/// Which platform secrets a process reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretNeeds {
    /// `JWT_SECRET`: signs and checks access tokens and e-mail links (the api).
    pub jwt: bool,
    /// `ENCRYPTION_MASTER_KEY` (and `ENCRYPTION_PREVIOUS_KEYS`): opens provider credentials and
    /// TOTP secrets (the api and the gateway).
    pub encryption: bool,
}

impl SecretNeeds {
    pub const ALL: Self = Self {
        jwt: true,
        encryption: true,
    };
    pub const NONE: Self = Self {
        jwt: false,
        encryption: false,
    };
}

impl Secrets {
    /// Both secrets, required (every command but `serve` of one service).
    pub fn from_source(src: &Source, demo: bool) -> Result<Self, ConfigError> {
        Self::needed(src, demo, SecretNeeds::ALL)
    }

    /// The secrets in `needs`, required; the others are stand-ins (see the module's comment).
    pub fn needed(src: &Source, demo: bool, needs: SecretNeeds) -> Result<Self, ConfigError> {
        let mut generated = Vec::new();
        let mut secret = |name: &'static str, needed: bool| -> Result<SecretString, ConfigError> {
            if !needed {
                return Ok(random_secret());
            }
            match (src.optional_string(name), demo) {
                (Some(value), _) if value.chars().count() >= MIN_SECRET_LEN => {
                    Ok(SecretString::from(value))
                }
                (_, true) => {
                    generated.push(name);
                    Ok(random_secret())
                }
                (None, false) => Err(ConfigError::new(name, "is not set", fix(name))),
                (Some(value), false) => Err(ConfigError::new(
                    name,
                    format!(
                        "is too short ({} characters, at least {MIN_SECRET_LEN} needed)",
                        value.chars().count()
                    ),
                    fix(name),
                )),
            }
        };
        let jwt_secret = secret("JWT_SECRET", needs.jwt)?;
        let encryption_master_key = secret("ENCRYPTION_MASTER_KEY", needs.encryption)?;
        let previous_master_keys = src
            .optional_string("ENCRYPTION_PREVIOUS_KEYS")
            .filter(|_| needs.encryption)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(|key| {
                if key.chars().count() < MIN_SECRET_LEN {
                    return Err(ConfigError::new(
                        "ENCRYPTION_PREVIOUS_KEYS",
                        format!("holds a key of {} characters", key.chars().count()),
                        "list the earlier ENCRYPTION_MASTER_KEY values exactly, separated by commas",
                    ));
                }
                Ok(SecretString::from(key.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            jwt_secret,
            encryption_master_key,
            previous_master_keys,
            generated,
        })
    }

    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

fn fix(name: &str) -> String {
    format!(
        "set {name} to at least {MIN_SECRET_LEN} random characters (for example `openssl rand -hex 32`), or run with --demo for throwaway secrets"
    )
}

fn random_secret() -> SecretString {
    // rand's thread generator is a CSPRNG seeded from the OS.
    let bytes: [u8; 32] = rand::random();
    SecretString::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
