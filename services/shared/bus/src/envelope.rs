//! The envelope on every bus entry: `id` (UUIDv7, the idempotency key), `type`, `tenant_id`,
//! `occurred_at`, `traceparent` and `payload` (JSON), stored as the entry's fields.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::Value;
use sb_contracts::Event;
use sb_kernel::TenantId;
use serde_json::value::RawValue;
use uuid::Uuid;

const FIELDS: [&str; 6] = [
    "id",
    "type",
    "tenant_id",
    "occurred_at",
    "traceparent",
    "payload",
];

/// Serializable too, so a producer can keep envelopes on disk while Redis is away.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    /// Unique per event, kept across redeliveries and replays: consumers deduplicate on it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant_id: TenantId,
    pub occurred_at: DateTime<Utc>,
    /// The W3C trace context of the code that produced the event, if it was traced.
    pub traceparent: Option<String>,
    /// The event as JSON, kept as text: a consumer deserializes it straight into its event
    /// type, without building a JSON tree first (the ledger reads thousands per batch).
    pub payload: Box<RawValue>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.kind == other.kind
            && self.tenant_id == other.tenant_id
            && self.occurred_at == other.occurred_at
            && self.traceparent == other.traceparent
            && self.payload.get() == other.payload.get()
    }
}

/// Why an entry could not be read as an envelope: a permanent failure (it goes to the DLQ).
#[derive(Debug, thiserror::Error)]
#[error("malformed envelope: {0}")]
pub struct MalformedEnvelope(pub String);

impl Envelope {
    /// A new event now, in the current trace.
    pub fn new<E: Event>(tenant_id: TenantId, event: &E) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            kind: E::TYPE.to_owned(),
            tenant_id,
            occurred_at: Utc::now(),
            traceparent: sb_telemetry::trace::current_traceparent(),
            payload: serde_json::value::to_raw_value(event)?,
        })
    }

    /// The payload as its typed event; a type mismatch or bad JSON is a permanent failure.
    pub fn decode<E: Event>(&self) -> Result<E, MalformedEnvelope> {
        if self.kind != E::TYPE {
            return Err(MalformedEnvelope(format!(
                "expected type {}, got {}",
                E::TYPE,
                self.kind
            )));
        }
        serde_json::from_str(self.payload.get())
            .map_err(|e| MalformedEnvelope(format!("payload of {}: {e}", self.kind)))
    }

    /// The entry's fields, named and written as text.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::with_capacity(FIELDS.len());
        self.each_field(|name, value| fields.push((name, value.to_owned())));
        fields
    }

    /// Appends the entry's fields to an `XADD`, each written straight from the envelope (the
    /// gateway publishes one per request).
    pub fn write_fields(&self, xadd: &mut redis::Cmd) {
        self.each_field(|name, value| {
            xadd.arg(name).arg(value);
        });
    }

    /// How many arguments [`write_fields`](Self::write_fields) appends (exactly), and about
    /// how many bytes.
    pub fn size_hint(&self) -> (usize, usize) {
        // `traceparent` is the one field that may be absent. Names, ids, type and timestamp
        // are well under 200 bytes.
        let fields = FIELDS.len() - usize::from(self.traceparent.is_none());
        let traceparent = self.traceparent.as_ref().map_or(0, String::len);
        (
            2 * fields,
            200 + self.kind.len() + self.payload.get().len() + traceparent,
        )
    }

    /// Calls `field` with each field's name and text, in order; `traceparent` only when set.
    fn each_field(&self, mut field: impl FnMut(&'static str, &str)) {
        let mut uuid = Uuid::encode_buffer();
        field("id", self.id.hyphenated().encode_lower(&mut uuid));
        field("type", &self.kind);
        field(
            "tenant_id",
            self.tenant_id
                .as_uuid()
                .hyphenated()
                .encode_lower(&mut uuid),
        );
        field(
            "occurred_at",
            &self
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        field("payload", self.payload.get());
        if let Some(traceparent) = &self.traceparent {
            field("traceparent", traceparent);
        }
    }

    /// Reads an entry's fields back.
    pub fn from_fields(fields: &HashMap<String, Value>) -> Result<Self, MalformedEnvelope> {
        Self::from_lookup(|name| fields.get(name))
    }

    /// Reads an entry's fields back from the flat list of names and values that Redis returns
    /// for a stream entry, without building a map first (the bus reads thousands per batch).
    pub fn from_field_list(fields: &[Value]) -> Result<Self, MalformedEnvelope> {
        Self::from_lookup(|name| {
            fields
                .chunks_exact(2)
                .find(|pair| text(&pair[0]).is_some_and(|n| n == name))
                .map(|pair| &pair[1])
        })
    }

    fn from_lookup<'a>(
        field: impl Fn(&str) -> Option<&'a Value>,
    ) -> Result<Self, MalformedEnvelope> {
        let optional = |name: &str| -> Result<Option<&'a str>, MalformedEnvelope> {
            field(name)
                .map(|value| {
                    text(value)
                        .ok_or_else(|| MalformedEnvelope(format!("field {name} is not text")))
                })
                .transpose()
        };
        let required = |name: &str| {
            optional(name)?.ok_or_else(|| MalformedEnvelope(format!("field {name} is missing")))
        };
        Ok(Self {
            id: required("id")?
                .parse()
                .map_err(|_| MalformedEnvelope("id is not a UUID".into()))?,
            kind: required("type")?.to_owned(),
            tenant_id: required("tenant_id")?
                .parse()
                .map_err(|_| MalformedEnvelope("tenant_id is not a UUID".into()))?,
            occurred_at: DateTime::parse_from_rfc3339(required("occurred_at")?)
                .map_err(|_| MalformedEnvelope("occurred_at is not RFC 3339".into()))?
                .with_timezone(&Utc),
            traceparent: optional("traceparent")?.map(str::to_owned),
            payload: RawValue::from_string(required("payload")?.to_owned())
                .map_err(|e| MalformedEnvelope(format!("payload is not JSON: {e}")))?,
        })
    }

    /// Whether `name` is one of the envelope's own fields (the DLQ adds others beside them).
    pub fn is_field(name: &str) -> bool {
        FIELDS.contains(&name)
    }
}

/// A field name or value as text, borrowed from the reply (stream fields are bulk strings).
fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(envelope: &Envelope) -> HashMap<String, Value> {
        envelope
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::BulkString(v.into_bytes())))
            .collect()
    }

    fn sample() -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            kind: "test.happened".into(),
            tenant_id: TenantId::new(),
            occurred_at: Utc::now(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            payload: serde_json::value::to_raw_value(
                &serde_json::json!({ "n": 1, "text": "héllo" }),
            )
            .unwrap(),
        }
    }

    #[test]
    fn round_trips_through_entry_fields() {
        let envelope = sample();
        let back = Envelope::from_fields(&fields(&envelope)).unwrap();
        // RFC 3339 with microseconds: the instant survives to the microsecond.
        assert_eq!(
            back.occurred_at.timestamp_micros(),
            envelope.occurred_at.timestamp_micros()
        );
        assert_eq!(
            Envelope {
                occurred_at: envelope.occurred_at,
                ..back
            },
            envelope
        );
    }

    #[test]
    fn reads_the_flat_field_list_of_a_reply() {
        let envelope = sample();
        let list: Vec<Value> = envelope
            .to_fields()
            .into_iter()
            .flat_map(|(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.into_bytes()),
                ]
            })
            .collect();
        let back = Envelope::from_field_list(&list).unwrap();
        assert_eq!(back, Envelope::from_fields(&fields(&envelope)).unwrap());
        assert_eq!(back.id, envelope.id);
        assert_eq!(back.payload.get(), envelope.payload.get());
        assert_eq!(
            Envelope::from_field_list(&list[2..])
                .unwrap_err()
                .to_string(),
            "malformed envelope: field id is missing"
        );
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let mut f = fields(&sample());
        f.remove("tenant_id");
        assert_eq!(
            Envelope::from_fields(&f).unwrap_err().to_string(),
            "malformed envelope: field tenant_id is missing"
        );
        let mut f = fields(&sample());
        f.insert("payload".into(), Value::BulkString(b"{not json".to_vec()));
        assert!(
            Envelope::from_fields(&f)
                .unwrap_err()
                .to_string()
                .contains("payload is not JSON")
        );
        let mut f = fields(&sample());
        f.insert("id".into(), Value::BulkString(b"42".to_vec()));
        assert_eq!(
            Envelope::from_fields(&f).unwrap_err().to_string(),
            "malformed envelope: id is not a UUID"
        );
    }
}
