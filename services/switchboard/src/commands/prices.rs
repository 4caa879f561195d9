//! `switchboard prices list|set|import`: the price book (`model_prices`), through the same rules
//! as the api (`sb_api::core::prices`): a price is never changed or removed, and a new one
//! starts now or later. Every price added is audited (`commands/audit.rs`), in the transaction
//! that adds it.

use std::io::Read;

use anyhow::{Context, bail};
use sb_api::core::audit::Actor;
use sb_api::core::prices::{self, NewPrice, PriceFilter, PriceView};
use sb_config::DatabaseConfig;
use sb_db::AppPool;
use sb_kernel::Micros;

use super::audit::{explain, operator};
use crate::cli::{PricesCommand, SetPrice};

/// How long a gateway may go on charging the price it read before (`sb_db::prices::REFRESH`).
const TAKEN_UP: &str = "gateways and the ledger read the book every 5 minutes";

pub async fn run(command: PricesCommand, database: &DatabaseConfig) -> anyhow::Result<()> {
    let db = AppPool::connect(database)
        .await
        .context("could not connect to Postgres (DATABASE_URL)")?;
    let done = match command {
        PricesCommand::List {
            provider,
            model,
            history,
        } => list(&db, PriceFilter { provider, model }, history).await,
        PricesCommand::Set(args) => set(&db, args).await,
        PricesCommand::Import { file, dry_run } => import(&db, &file, dry_run).await,
    };
    db.close().await;
    done
}

async fn list(db: &AppPool, filter: PriceFilter, history: bool) -> anyhow::Result<()> {
    let mut tx = db.begin_global().await?;
    let book = prices::list(&mut tx, &filter)
        .await
        .map_err(|e| anyhow::anyhow!("could not read the price book: {}", explain(&e)))?;
    tx.commit().await?;
    let shown: Vec<&PriceView> = book
        .iter()
        .filter(|p| history || p.status != "superseded")
        .collect();
    if shown.is_empty() {
        println!("No prices match. Add one: switchboard prices set --help");
        return Ok(());
    }
    println!(
        "{:<10} {:<28} {:<20} {:>14} {:>14} {:>14}  STATUS",
        "PROVIDER", "MODEL", "EFFECTIVE FROM", "INPUT", "CACHED INPUT", "OUTPUT"
    );
    for p in &shown {
        println!(
            "{:<10} {:<28} {:<20} {:>14} {:>14} {:>14}  {}",
            p.provider,
            p.model,
            p.effective_from.format("%Y-%m-%d %H:%M:%S"),
            dollars(p.input_micros_per_mtok),
            dollars(p.cached_input_micros_per_mtok),
            dollars(p.output_micros_per_mtok),
            p.status
        );
    }
    let hidden = book.len() - shown.len();
    println!("USD per million tokens; times in UTC.");
    if hidden > 0 {
        println!("{hidden} superseded price(s) not shown (--history shows them).");
    }
    Ok(())
}

/// Exact dollars with the trailing zeros cut, but at least cents: `$2.50`, `$0.075`.
fn dollars(micros: i64) -> String {
    let text = Micros(micros).to_string();
    let trimmed = text.trim_end_matches('0');
    match trimmed.split_once('.') {
        Some((whole, fraction)) if fraction.len() < 2 => format!("{whole}.{fraction:0<2}"),
        _ => trimmed.to_owned(),
    }
}

async fn set(db: &AppPool, args: SetPrice) -> anyhow::Result<()> {
    let req = NewPrice {
        provider: args.provider,
        model: args.model,
        effective_from: args.from,
        input_micros_per_mtok: args.input.0,
        cached_input_micros_per_mtok: args.cached_input.map(|m| m.0),
        output_micros_per_mtok: args.output.0,
        currency: None,
    };
    let meta = operator();
    let mut tx = db.begin_global().await?;
    let added = prices::add(&mut tx, Actor::anonymous(&meta), &req, "cli")
        .await
        .map_err(|e| anyhow::anyhow!("refused, nothing changed: {}", explain(&e)))?;
    tx.commit()
        .await
        .context("could not save the price; nothing changed")?;
    println!(
        "Added {}/{}: {} input, {} cached input, {} output per million tokens, from {} ({}).",
        added.provider,
        added.model,
        dollars(added.input_micros_per_mtok),
        dollars(added.cached_input_micros_per_mtok),
        dollars(added.output_micros_per_mtok),
        added.effective_from.format("%Y-%m-%d %H:%M:%S UTC"),
        added.status
    );
    println!(
        "Calls before that time keep their price. {TAKEN_UP}: a price dated at least 5 minutes \
         ahead is charged from its first second, one dated sooner within 5 minutes."
    );
    Ok(())
}

async fn import(db: &AppPool, file: &str, dry_run: bool) -> anyhow::Result<()> {
    let (name, text) = if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the CSV from stdin")?;
        ("stdin".to_owned(), text)
    } else {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("could not read {file}"))?;
        (file.to_owned(), text)
    };
    let rows = match prices::csv::parse(&text) {
        Ok(rows) => rows,
        Err(errors) => bail!(
            "{name}: {} bad line(s), nothing imported:\n  {}",
            errors.len(),
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
    };
    eprintln!(
        "Read {} price(s) from {name}; checking them against the book…",
        rows.len()
    );
    let meta = operator();
    let mut tx = db.begin_global().await?;
    let report = prices::import(&mut tx, Actor::anonymous(&meta), &rows)
        .await
        .map_err(|e| {
            let lines = if e.errors.is_empty() {
                e.detail.clone()
            } else {
                e.errors
                    .iter()
                    .map(|f| format!("{} {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("\n  ")
            };
            anyhow::anyhow!("{name}: refused, nothing imported:\n  {lines}")
        })?;
    if dry_run {
        // Dropped without a commit: the transaction rolls back.
        drop(tx);
    } else {
        tx.commit()
            .await
            .context("could not save the prices; nothing imported")?;
    }
    for p in &report.added {
        println!(
            "{} {}/{} from {}: {} / {} / {} per million tokens ({})",
            if dry_run { "would add" } else { "added" },
            p.provider,
            p.model,
            p.effective_from.format("%Y-%m-%d %H:%M:%S UTC"),
            dollars(p.input_micros_per_mtok),
            dollars(p.cached_input_micros_per_mtok),
            dollars(p.output_micros_per_mtok),
            p.status
        );
    }
    println!(
        "{}: {} added, {} already in the book{}.",
        name,
        report.added.len(),
        report.unchanged,
        if dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    if !dry_run && !report.added.is_empty() {
        println!("{TAKEN_UP}; calls made before a price's date keep their old price.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn dollars_are_exact_and_short() {
        assert_eq!(dollars(2_500_000), "$2.50");
        assert_eq!(dollars(75_000), "$0.075");
        assert_eq!(dollars(10_000_000), "$10.00");
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(1), "$0.000001");
    }
}
