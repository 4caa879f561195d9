//! `switchboard doctor`: prints each check as PASS or FAIL with how to fix it; fails (exit 1)
//! if any check fails.

use sb_config::Source;

pub async fn run() -> anyhow::Result<bool> {
    eprintln!("Checking the configuration, Postgres and Redis…");
    let checks = crate::doctor::checks(&Source::env()).await;
    for check in &checks {
        println!(
            "{}  {}: {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
        if !check.passed {
            println!("      fix: {}", check.fix);
        }
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    println!(
        "{} checks: {} passed, {failed} failed",
        checks.len(),
        checks.len() - failed
    );
    Ok(failed == 0)
}
