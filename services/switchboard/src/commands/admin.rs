//! `switchboard admin create|list|revoke`: the platform's operators (`users.is_platform_admin`).
//!
//! Each change is written with its audit entry in one transaction (`commands/audit.rs`).

use std::io::Read;

use anyhow::{Context, bail};
use sb_api::core::audit::Entry;
use sb_api::core::validate::Checks;
use sb_auth::password;
use sb_config::DatabaseConfig;
use sb_db::AppPool;
use sb_kernel::UserId;

use super::audit::{self, explain};
use crate::cli::AdminCommand;

pub async fn run(command: AdminCommand, database: &DatabaseConfig) -> anyhow::Result<()> {
    let db = AppPool::connect(database)
        .await
        .context("could not connect to Postgres (DATABASE_URL)")?;
    let done = match command {
        AdminCommand::Create {
            email,
            password_stdin,
        } => create(&db, &email, password_stdin).await,
        AdminCommand::List => list(&db).await,
        AdminCommand::Revoke { email } => revoke(&db, &email).await,
    };
    db.close().await;
    done
}

async fn create(db: &AppPool, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let email = email.trim();
    let plain = if password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the password from stdin")?;
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        None
    };
    let mut checks = Checks::new();
    checks.email("email", email);
    if let Some(plain) = &plain {
        checks.password("password", plain);
    }
    if let Err(refused) = checks.finish() {
        bail!("refused: {}", explain(&refused));
    }
    let mut tx = db.begin_global().await?;
    let existing = sqlx::query!(
        "SELECT id, is_platform_admin FROM users WHERE lower(email) = lower($1) AND erased_at IS NULL",
        email
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (id, issued) = match existing {
        Some(user) => {
            if user.is_platform_admin && plain.is_none() {
                println!("{email} is already a platform admin; nothing changed.");
                return Ok(());
            }
            let hash = plain.as_deref().map(password::hash).transpose()?;
            sqlx::query!(
                "UPDATE users SET is_platform_admin = true, updated_at = now(),
                        password_hash = coalesce($2, password_hash)
                  WHERE id = $1",
                user.id,
                hash,
            )
            .execute(&mut *tx)
            .await?;
            (user.id, None)
        }
        None => {
            // A new account: the operator's password, or a strong one printed once.
            let (plain, issued) = match plain {
                Some(plain) => (plain, None),
                None => {
                    let generated = password::generate();
                    (generated.clone(), Some(generated))
                }
            };
            let id = UserId::new().as_uuid();
            sqlx::query!(
                "INSERT INTO users (id, email, password_hash, is_platform_admin, email_verified_at)
                 VALUES ($1, $2, $3, true, now())",
                id,
                email,
                password::hash(&plain)?,
            )
            .execute(&mut *tx)
            .await?;
            (id, issued)
        }
    };
    let entry = Entry::new("platform_admin.grant", "user", id)
        .details(serde_json::json!({"email": email, "via": "cli"}));
    audit::commit(tx, entry).await?;
    match issued {
        Some(password) => println!("{email} is a platform admin; password {password} (shown once)"),
        None => println!("{email} is a platform admin."),
    }
    Ok(())
}

async fn list(db: &AppPool) -> anyhow::Result<()> {
    let mut tx = db.begin_global().await?;
    let admins = sqlx::query!(
        "SELECT email, created_at FROM users
          WHERE is_platform_admin AND erased_at IS NULL ORDER BY created_at"
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if admins.is_empty() {
        println!("No platform admin yet: switchboard admin create --email you@example.com");
    }
    for admin in admins {
        println!(
            "{}  since {}",
            admin.email,
            admin.created_at.format("%Y-%m-%d")
        );
    }
    Ok(())
}

async fn revoke(db: &AppPool, email: &str) -> anyhow::Result<()> {
    let mut tx = db.begin_global().await?;
    // Locks every admin row, so two revocations at once cannot both see another admin left.
    let admins = sqlx::query!(
        "SELECT id, lower(email) AS \"email!\" FROM users
          WHERE is_platform_admin AND erased_at IS NULL FOR UPDATE"
    )
    .fetch_all(&mut *tx)
    .await?;
    let wanted = email.trim().to_lowercase();
    let Some(target) = admins.iter().find(|a| a.email == wanted) else {
        bail!("{email} is not a platform admin (switchboard admin list shows who is)");
    };
    if admins.len() == 1 {
        bail!("{email} is the last platform admin; make another first (switchboard admin create)");
    }
    sqlx::query!(
        "UPDATE users SET is_platform_admin = false, updated_at = now() WHERE id = $1",
        target.id
    )
    .execute(&mut *tx)
    .await?;
    let entry = Entry::new("platform_admin.revoke", "user", target.id)
        .details(serde_json::json!({"email": wanted, "via": "cli"}));
    audit::commit(tx, entry).await?;
    println!("{email} is no longer a platform admin.");
    Ok(())
}
