//! What Rapport's events and data keys look like inside KurrentDB, and back.

use super::*;

/// What a Rapport event looks like inside KurrentDB: JSON, so KurrentDB's own tools can read
/// it, with the canonical public data kept byte for byte.
#[derive(Serialize, Deserialize)]
pub(super) struct Payload {
    pub(super) version: u16,
    pub(super) customer: String,
    pub(super) occurred_at: String,
    pub(super) data: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) metadata: Option<Box<RawValue>>,
    /// base64 of `nonce ‖ ciphertext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key_generation: Option<u32>,
    /// hex of the 16-byte digest.
    pub(super) digest: String,
}

/// The JSON stored in KurrentDB for `ev`.
pub(super) fn payload_json(ev: &SealedEvent) -> Result<String, StoreError> {
    let raw = |s: &str| {
        RawValue::from_string(s.to_owned())
            .map_err(|e| StoreError::Invalid(format!("event {}: not canonical JSON: {e}", ev.id)))
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = Payload {
        version: ev.version,
        customer: ev.customer.clone(),
        occurred_at: ev.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        data: raw(&ev.data)?,
        metadata: ev.metadata.as_deref().map(raw).transpose()?,
        sealed: ev.sealed.as_ref().map(|(s, _)| b64.encode(s)),
        key_generation: ev.sealed.as_ref().map(|(_, g)| *g),
        digest: hex::encode(ev.digest),
    };
    serde_json::to_string(&payload)
        .map_err(|e| StoreError::Io(format!("encoding event {}: {e}", ev.id)))
}

pub(super) fn encode(ev: &SealedEvent) -> Result<EventData, StoreError> {
    let json = RawValue::from_string(payload_json(ev)?)
        .map_err(|e| StoreError::Io(format!("encoding event {}: {e}", ev.id)))?;
    let data = EventData::json(ev.event_type.as_str(), &json)
        .map_err(|e| StoreError::Io(format!("encoding event {}: {e}", ev.id)))?;
    Ok(data.id(ev.id))
}

/// Decodes a recorded event of stream `stream` (prefix already removed).
pub(super) fn decode(
    rec: &RecordedEvent,
    stream: &str,
    position: u64,
    recorded_at: DateTime<Utc>,
) -> Result<StoredEvent, StoreError> {
    let at = Recorded {
        id: rec.id,
        event_type: &rec.event_type,
        revision: rec.revision,
        data: &rec.data,
    };
    decode_parts(at, stream, position, recorded_at)
}

/// The parts of a recorded event that [`decode`] reads.
pub(super) struct Recorded<'a> {
    pub(super) id: Uuid,
    pub(super) event_type: &'a str,
    pub(super) revision: u64,
    pub(super) data: &'a [u8],
}

pub(super) fn decode_parts(
    rec: Recorded<'_>,
    stream: &str,
    position: u64,
    recorded_at: DateTime<Utc>,
) -> Result<StoredEvent, StoreError> {
    let bad = |what: String| StoreError::Integrity { position, what };
    let p: Payload =
        serde_json::from_slice(rec.data).map_err(|e| bad(format!("not a Rapport payload: {e}")))?;
    let event_type = EventType::parse(rec.event_type)
        .ok_or_else(|| bad(format!("unknown event type `{}`", rec.event_type)))?;
    let occurred_at = DateTime::parse_from_rfc3339(&p.occurred_at)
        .map_err(|e| bad(format!("bad occurred_at: {e}")))?
        .with_timezone(&Utc);
    let digest: [u8; 16] = hex::decode(&p.digest)
        .ok()
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| bad("the digest is not 16 hex bytes".into()))?;
    let sealed = match (p.sealed, p.key_generation) {
        (Some(s), Some(g)) => Some((
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| bad("sealed data is not base64".into()))?,
            g,
        )),
        (None, None) => None,
        _ => return Err(bad("sealed data without a key generation".into())),
    };
    Ok(StoredEvent {
        position,
        stream_version: rec.revision,
        recorded_at,
        event: SealedEvent {
            id: rec.id,
            stream: stream.to_owned(),
            event_type,
            version: p.version,
            customer: p.customer,
            occurred_at,
            data: p.data.get().to_owned(),
            metadata: p.metadata.map(|m| m.get().to_owned()),
            sealed,
            digest,
        },
    })
}

pub(super) const KEY_WRAPPED: &str = "rapport.data_key";

pub(super) const KEY_DESTROYED: &str = "rapport.data_key_destroyed";

pub(super) const MASTER_KEY: &str = "rapport.master_key";

#[derive(Serialize, Deserialize)]
pub(super) struct KeyPayload {
    pub(super) customer: String,
    pub(super) generation: u32,
    /// hex of `nonce ‖ ciphertext`; absent once destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) wrapped: Option<String>,
    #[serde(default)]
    pub(super) master_key_id: String,
}
