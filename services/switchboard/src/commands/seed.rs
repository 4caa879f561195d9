//! `switchboard seed --demo [--json]`.

use sb_config::Config;
use sb_db::AppPool;

use crate::demo;

pub async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let db = AppPool::connect(&config.database).await?;
    let seed = demo::seed(&db, config).await?;
    db.close().await;
    if json {
        println!("{}", serde_json::to_string(&seed)?);
        return Ok(());
    }
    println!(
        "Demo data is ready (credentials are new on every run; only their hashes are stored):"
    );
    println!("  tenant          Demo (slug demo, id {})", seed.tenant_id);
    println!(
        "  tenant admin    {}  password {}",
        seed.admin_email, seed.admin_password
    );
    println!(
        "  platform admin  {}  password {}",
        seed.platform_admin_email, seed.platform_admin_password
    );
    println!(
        "  API key         {}  (gateway: Authorization: Bearer …)",
        seed.api_key
    );
    println!(
        "  provider        {} at {} ({})",
        seed.provider_name,
        seed.provider_base_url,
        seed.models.join(", ")
    );
    if seed.budget_limit_micros.0 > 0 && !seed.budget_periods.is_empty() {
        println!(
            "  budget          {} {} for the tenant",
            seed.budget_limit_micros,
            seed.budget_periods.join(" and ")
        );
    }
    println!(
        "  agent           demo-assistant (mock-agent; write_file, append_file, delete_file and bash wait for approval)"
    );
    Ok(())
}
