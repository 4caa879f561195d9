//! `switchboard dlq list|show|replay|purge`: each prints what it did; replay and purge are
//! audited (`commands/audit.rs`).

use sb_api::core::audit::Entry;
use sb_bus::{Bus, DeadLetter, Selection};
use sb_config::{DatabaseConfig, RedisConfig, Source};

use crate::cli::{DlqCommand, Which};

pub async fn run(command: DlqCommand) -> anyhow::Result<()> {
    let source = Source::env();
    let bus = Bus::new(&RedisConfig::from_source(&source)?)?;
    match command {
        DlqCommand::List { stream, limit } => {
            let streams: Vec<String> = stream.map_or_else(
                || {
                    sb_contracts::streams::ALL
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                },
                |s| vec![s],
            );
            for stream in streams {
                let total = bus.dlq_len(&stream).await?;
                println!(
                    "{} ({total} dead letter{})",
                    bus.dlq_key(&stream),
                    if total == 1 { "" } else { "s" }
                );
                for letter in bus.dlq_list(&stream, limit).await? {
                    println!(
                        "  {}  attempts {}  group {}  failed {}  {}",
                        letter.id, letter.attempts, letter.group, letter.failed_at, letter.error
                    );
                }
                if total > limit {
                    println!("  … {} more (--limit)", total - limit);
                }
            }
        }
        DlqCommand::Show { stream, id } => print_letter(&bus.dlq_show(&stream, &id).await?),
        DlqCommand::Replay { stream, which } => {
            let replayed = bus.dlq_replay(&stream, &selection(which)).await?;
            println!(
                "Replayed {} dead letter(s) from {} to {}:",
                replayed.len(),
                bus.dlq_key(&stream),
                bus.stream_key(&stream)
            );
            let ids: Vec<&str> = replayed.iter().map(|(letter, _)| letter.as_str()).collect();
            let entry = Entry::new("dlq.replay", "stream", &stream)
                .details(serde_json::json!({"dead_letters": ids, "via": "cli"}));
            for (letter, entry) in &replayed {
                println!("  {letter} → {entry}");
            }
            super::audit::record(&DatabaseConfig::from_source(&source)?, entry).await?;
        }
        DlqCommand::Purge { stream, which } => {
            let purged = bus.dlq_purge(&stream, &selection(which)).await?;
            println!(
                "Purged {purged} dead letter(s) from {}.",
                bus.dlq_key(&stream)
            );
            let entry = Entry::new("dlq.purge", "stream", &stream)
                .details(serde_json::json!({"purged": purged, "via": "cli"}));
            super::audit::record(&DatabaseConfig::from_source(&source)?, entry).await?;
        }
    }
    Ok(())
}

fn selection(which: Which) -> Selection {
    match which.id {
        Some(id) if !which.all => Selection::One(id),
        _ => Selection::All,
    }
}

fn print_letter(letter: &DeadLetter) {
    println!("dead letter  {}", letter.id);
    println!("stream       {} (entry {})", letter.stream, letter.entry_id);
    println!("group        {}", letter.group);
    println!("attempts     {}", letter.attempts);
    println!("failed at    {}", letter.failed_at);
    println!("error        {}", letter.error);
    match &letter.envelope {
        Some(envelope) => {
            println!(
                "event        {} ({}), tenant {}, at {}",
                envelope.id, envelope.kind, envelope.tenant_id, envelope.occurred_at
            );
            println!(
                "payload      {}",
                serde_json::from_str::<serde_json::Value>(envelope.payload.get())
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_else(|_| envelope.payload.get().to_owned())
            );
        }
        None => {
            println!("entry        (not a valid envelope; its fields as they were)");
            for (field, value) in &letter.fields {
                println!("  {field} = {}", String::from_utf8_lossy(value));
            }
        }
    }
}
