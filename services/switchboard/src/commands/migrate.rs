//! `switchboard migrate`: create the database if missing, apply pending migrations, say what
//! was done.

use sb_config::DatabaseConfig;
use sb_db::MigrationReport;
use secrecy::ExposeSecret;

pub async fn run(database: &DatabaseConfig) -> anyhow::Result<MigrationReport> {
    eprintln!("Applying migrations (DATABASE_OWNER_URL)…");
    let report = sb_db::migrate(database.owner_url.expose_secret()).await?;
    if report.created_database {
        eprintln!("  created the database");
    }
    for migration in &report.applied {
        eprintln!("  applied {migration}");
    }
    if report.applied.is_empty() {
        eprintln!(
            "Database is up to date ({} migrations already applied).",
            report.already_applied
        );
    } else {
        eprintln!(
            "Applied {} migration(s); {} were already applied.",
            report.applied.len(),
            report.already_applied
        );
    }
    let role_urls = [
        (sb_db::APP_ROLE, database.app_url.expose_secret()),
        (sb_db::SYSTEM_ROLE, database.system_url.expose_secret()),
    ];
    for role in sb_db::set_role_passwords(database.owner_url.expose_secret(), &role_urls).await? {
        eprintln!("  set the password of {role} (from its URL)");
    }
    Ok(report)
}
