//! Trimming that never drops an entry a group still needs.
//!
//! A group needs every entry from its oldest pending one (delivered, not acked) or, with
//! nothing pending, from the first entry after its last delivered one. The stream is trimmed
//! (XTRIM MINID) to the smallest of those over all groups, so memory stays bounded by the
//! slowest group's backlog and nothing unacknowledged is ever lost. A stream with no group is
//! left alone.

use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};

use crate::bus::Bus;
use crate::error::BusError;

/// A stream entry id, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryId {
    ms: u64,
    seq: u64,
}

impl EntryId {
    pub(crate) fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    fn next(self) -> Self {
        if self.seq == u64::MAX {
            Self {
                ms: self.ms + 1,
                seq: 0,
            }
        } else {
            Self {
                ms: self.ms,
                seq: self.seq + 1,
            }
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl Bus {
    /// Trims `stream` below the oldest entry any group still needs; returns how many entries
    /// were removed.
    pub async fn trim(&self, stream: &str) -> Result<usize, BusError> {
        let key = self.stream_key(stream);
        let mut conn = self.conn();
        let groups: StreamInfoGroupsReply = match redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&key)
            .query_async(&mut conn)
            .await
        {
            Ok(groups) => groups,
            // No such stream yet: nothing to trim.
            Err(e) if e.to_string().contains("no such key") => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut keep_from: Option<EntryId> = None;
        for group in &groups.groups {
            let needed = if group.pending > 0 {
                let summary: StreamPendingReply = redis::cmd("XPENDING")
                    .arg(&key)
                    .arg(&group.name)
                    .query_async(&mut conn)
                    .await?;
                let oldest = match summary {
                    StreamPendingReply::Data(data) => EntryId::parse(&data.start_id),
                    _ => None,
                };
                // Pending entries reported but not readable: keep everything (never guess).
                let Some(oldest) = oldest else { return Ok(0) };
                oldest
            } else {
                let Some(last) = EntryId::parse(&group.last_delivered_id) else {
                    return Ok(0);
                };
                last.next()
            };
            keep_from = Some(keep_from.map_or(needed, |k| k.min(needed)));
        }
        let Some(keep_from) = keep_from else {
            return Ok(0);
        };
        Ok(redis::cmd("XTRIM")
            .arg(&key)
            .arg("MINID")
            .arg(keep_from.to_string())
            .query_async(&mut conn)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::EntryId;

    #[test]
    fn entry_ids_order_like_redis() {
        let a = EntryId::parse("1700000000000-5").unwrap();
        let b = EntryId::parse("1700000000000-12").unwrap();
        let c = EntryId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c, "numeric, not lexical");
        assert_eq!(a.next().to_string(), "1700000000000-6");
        assert!(EntryId::parse("nonsense").is_none());
    }
}
