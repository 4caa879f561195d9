//! Dead-letter operations: list, show, replay, purge. A dead letter is the original entry's
//! fields plus `dlq_stream`, `dlq_entry_id`, `dlq_group`, `dlq_attempts`, `dlq_error` and
//! `dlq_failed_at`. Replay appends the original fields to the original stream (a new entry id,
//! the same envelope id, so idempotent consumers recognise work already done) and deletes the
//! dead letter, in one MULTI.

use redis::Value;
use redis::streams::{StreamId, StreamRangeReply};

use crate::bus::Bus;
use crate::envelope::Envelope;
use crate::error::BusError;

/// Which dead letters an operation applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    One(String),
    All,
}

#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The dead letter's own id in `<stream>:dlq`.
    pub id: String,
    pub stream: String,
    /// The entry's id on its stream when it failed.
    pub entry_id: String,
    pub group: String,
    pub attempts: u64,
    pub error: String,
    pub failed_at: String,
    /// The original entry, as an envelope when it is one (a malformed entry is not).
    pub envelope: Option<Envelope>,
    /// The original entry's fields, exactly as they were.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    fn from_entry(stream: &str, entry: StreamId) -> Self {
        let text = |name: &str| {
            entry
                .map
                .get(name)
                .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                .unwrap_or_default()
        };
        let fields: Vec<(String, Vec<u8>)> = entry
            .map
            .iter()
            .filter(|(k, _)| !k.starts_with("dlq_"))
            .filter_map(|(k, v)| {
                if let Value::BulkString(b) = v {
                    Some((k.clone(), b.clone()))
                } else {
                    None
                }
            })
            .collect();
        let original: std::collections::HashMap<String, Value> = entry
            .map
            .iter()
            .filter(|(k, _)| Envelope::is_field(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            stream: stream.to_owned(),
            entry_id: text("dlq_entry_id"),
            group: text("dlq_group"),
            attempts: text("dlq_attempts").parse().unwrap_or(0),
            error: text("dlq_error"),
            failed_at: text("dlq_failed_at"),
            envelope: Envelope::from_fields(&original).ok(),
            fields,
            id: entry.id,
        }
    }
}

impl Bus {
    /// Dead letters of `stream`, oldest first, at most `limit`.
    pub async fn dlq_list(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.dlq_key(stream))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| DeadLetter::from_entry(stream, e))
            .collect())
    }

    pub async fn dlq_len(&self, stream: &str) -> Result<usize, BusError> {
        Ok(redis::cmd("XLEN")
            .arg(self.dlq_key(stream))
            .query_async(&mut self.conn())
            .await?)
    }

    pub async fn dlq_show(&self, stream: &str, id: &str) -> Result<DeadLetter, BusError> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.dlq_key(stream))
            .arg(id)
            .arg(id)
            .query_async(&mut self.conn())
            .await?;
        reply
            .ids
            .into_iter()
            .next()
            .map(|e| DeadLetter::from_entry(stream, e))
            .ok_or_else(|| BusError::NoSuchDeadLetter {
                stream: stream.to_owned(),
                id: id.to_owned(),
            })
    }

    /// Puts dead letters back on their stream; returns `(dead letter id, new entry id)` pairs.
    pub async fn dlq_replay(
        &self,
        stream: &str,
        which: &Selection,
    ) -> Result<Vec<(String, String)>, BusError> {
        let mut replayed = Vec::new();
        for letter in self.selected(stream, which).await? {
            let mut xadd = redis::cmd("XADD");
            xadd.arg(self.stream_key(stream)).arg("*");
            for (field, value) in &letter.fields {
                xadd.arg(field).arg(value.as_slice());
            }
            let mut pipe = redis::pipe();
            pipe.atomic()
                .add_command(xadd)
                .cmd("XDEL")
                .arg(self.dlq_key(stream))
                .arg(&letter.id)
                .ignore();
            let (new_id,): (String,) = pipe.query_async(&mut self.conn()).await?;
            replayed.push((letter.id, new_id));
        }
        Ok(replayed)
    }

    /// Deletes dead letters; returns how many.
    pub async fn dlq_purge(&self, stream: &str, which: &Selection) -> Result<usize, BusError> {
        match which {
            Selection::All => {
                let len = self.dlq_len(stream).await?;
                let _: () = redis::cmd("DEL")
                    .arg(self.dlq_key(stream))
                    .query_async(&mut self.conn())
                    .await?;
                Ok(len)
            }
            Selection::One(id) => {
                let deleted: usize = redis::cmd("XDEL")
                    .arg(self.dlq_key(stream))
                    .arg(id)
                    .query_async(&mut self.conn())
                    .await?;
                if deleted == 0 {
                    return Err(BusError::NoSuchDeadLetter {
                        stream: stream.to_owned(),
                        id: id.clone(),
                    });
                }
                Ok(deleted)
            }
        }
    }

    async fn selected(&self, stream: &str, which: &Selection) -> Result<Vec<DeadLetter>, BusError> {
        match which {
            Selection::One(id) => Ok(vec![self.dlq_show(stream, id).await?]),
            // Redis takes COUNT as a signed 64-bit integer: usize::MAX is refused.
            Selection::All => self.dlq_list(stream, i64::MAX as usize).await,
        }
    }
}
