//! `switchboard keys rotate`: re-encrypts every secret sealed by the master key (provider
//! credentials and users' TOTP secrets) under the current master key, while the platform keeps
//! serving.
//!
//! The procedure (docs/runbooks/key-rotation.md): set the new key as `ENCRYPTION_MASTER_KEY`
//! and the old one in `ENCRYPTION_PREVIOUS_KEYS` everywhere (gateways then open both), run this,
//! and once it reports no ciphertext left under the old key, drop it from
//! `ENCRYPTION_PREVIOUS_KEYS`. Each secret is re-sealed in its own short update, guarded by the
//! key id and ciphertext it was read with, so a secret the api changes meanwhile (even by an
//! instance still sealing under the old key) is never overwritten.

use sb_config::Config;
use sb_crypto::Keyring;
use sb_db::SystemPool;
use uuid::Uuid;

/// How many credentials are read per round.
const BATCH: i64 = 100;

/// A table of sealed secrets: its name, ciphertext column and key id column. The row's id is
/// the associated data of its ciphertext.
struct Target {
    table: &'static str,
    ciphertext: &'static str,
    key_id: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        table: "provider_credentials",
        ciphertext: "secret_ciphertext",
        key_id: "secret_key_id",
    },
    Target {
        table: "users",
        ciphertext: "totp_secret_ciphertext",
        key_id: "totp_key_id",
    },
    Target {
        table: "webhooks",
        ciphertext: "secret_ciphertext",
        key_id: "secret_key_id",
    },
    // A rotated-away webhook secret, during its grace period.
    Target {
        table: "webhooks",
        ciphertext: "previous_secret_ciphertext",
        key_id: "previous_secret_key_id",
    },
];

#[derive(sqlx::FromRow)]
struct Sealed {
    id: Uuid,
    secret_ciphertext: Vec<u8>,
    secret_key_id: String,
}

/// What a rotation did.
#[derive(Debug, Default)]
pub struct Rotation {
    pub rotated: usize,
    /// Credentials sealed by a key this keyring does not know, with that key's id.
    pub unknown: Vec<(Uuid, String)>,
    /// Ciphertexts per key id afterwards.
    pub by_key: Vec<(String, i64)>,
}

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let keyring = Keyring::new(
        &config.secrets.encryption_master_key,
        &config.secrets.previous_master_keys,
    );
    let db = SystemPool::connect(&config.database).await?;
    eprintln!(
        "Re-encrypting provider credentials and TOTP secrets under {} (ENCRYPTION_MASTER_KEY)…",
        keyring.current_key_id()
    );
    let rotation = rotate(&db, &keyring).await?;
    db.close().await;
    let entry =
        sb_api::core::audit::Entry::new("keys.rotate", "master_key", keyring.current_key_id())
            .details(serde_json::json!({
                "rotated": rotation.rotated,
                "unopened": rotation.unknown.len(),
                "via": "cli",
            }));
    super::audit::record(&config.database, entry).await?;
    println!("Re-encrypted {} secret(s).", rotation.rotated);
    for (key_id, count) in &rotation.by_key {
        let role = if key_id == keyring.current_key_id() {
            "current"
        } else {
            "old"
        };
        println!("  {key_id} ({role}): {count} ciphertext(s)");
    }
    if !rotation.unknown.is_empty() {
        for (id, key_id) in &rotation.unknown {
            println!("  secret of {id} is sealed by {key_id}, which no configured key derives");
        }
        anyhow::bail!(
            "{} secret(s) could not be opened: add the master key that sealed them to ENCRYPTION_PREVIOUS_KEYS and run again",
            rotation.unknown.len()
        );
    }
    println!(
        "No ciphertext is left under an old key: remove the old keys from ENCRYPTION_PREVIOUS_KEYS."
    );
    Ok(())
}

/// Re-seals every secret not under the current key. Safe to run again at any time.
pub async fn rotate(db: &SystemPool, keyring: &Keyring) -> anyhow::Result<Rotation> {
    let mut rotation = Rotation::default();
    for target in TARGETS {
        rotate_table(db, keyring, target, &mut rotation).await?;
    }
    for target in TARGETS {
        let counts: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {key}, count(*) FROM {table} WHERE {key} IS NOT NULL GROUP BY 1 ORDER BY 1",
            key = target.key_id,
            table = target.table
        )))
        .fetch_all(db.pool())
        .await?;
        for (key_id, count) in counts {
            match rotation.by_key.iter_mut().find(|(k, _)| *k == key_id) {
                Some((_, total)) => *total += count,
                None => rotation.by_key.push((key_id, count)),
            }
        }
    }
    rotation.by_key.sort();
    Ok(rotation)
}

async fn rotate_table(
    db: &SystemPool,
    keyring: &Keyring,
    target: &Target,
    rotation: &mut Rotation,
) -> anyhow::Result<()> {
    let current = keyring.current_key_id().to_owned();
    let mut skipped: Vec<Uuid> = Vec::new();
    let (table, ct, key) = (target.table, target.ciphertext, target.key_id);
    loop {
        let batch: Vec<Sealed> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {ct} AS secret_ciphertext, {key} AS secret_key_id FROM {table}
              WHERE {key} IS NOT NULL AND {key} <> $1 AND NOT (id = ANY($2))
              ORDER BY id LIMIT $3"
        )))
        .bind(&current)
        .bind(&skipped)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?;
        if batch.is_empty() {
            return Ok(());
        }
        for row in batch {
            let plaintext = match keyring.open(
                &row.secret_key_id,
                &row.secret_ciphertext,
                row.id.as_bytes(),
            ) {
                Ok(plaintext) => plaintext,
                Err(e) => {
                    tracing::warn!(table, id = %row.id, key_id = %row.secret_key_id, error = %e, "cannot open a sealed secret");
                    skipped.push(row.id);
                    rotation.unknown.push((row.id, row.secret_key_id));
                    continue;
                }
            };
            let sealed = keyring.seal(&plaintext, row.id.as_bytes())?;
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET {ct} = $2, {key} = $3, updated_at = now()
                  WHERE id = $1 AND {key} = $4 AND {ct} = $5"
            )))
            .bind(row.id)
            .bind(&sealed.ciphertext)
            .bind(&sealed.key_id)
            .bind(&row.secret_key_id)
            .bind(&row.secret_ciphertext)
            .execute(db.pool())
            .await?;
            rotation.rotated += usize::try_from(updated.rows_affected()).unwrap_or(0);
        }
        eprintln!("  {table}: {} re-encrypted so far", rotation.rotated);
    }
}
