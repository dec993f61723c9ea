//! What lives in memory instead of secondary indexes: event id → position and stream →
//! positions, rebuilt from the table when the store opens.

use super::*;

/// An event id as two words: a `u128` key is 16-byte aligned, which would make every slot
/// of the id map 32 bytes where 24 do.
pub(super) type IdKey = (u64, u64);

/// Event id → position, in about 9 bytes an event: a 32-bit fingerprint of each event's
/// id, by position, and a lookup table of positions hashed by that fingerprint (a map of
/// 64-bit fingerprints to positions would take over twice that; a map of ids, over three
/// times). A fingerprint only says where an id *may* be: the caller reads the rows it names
/// and compares the ids, so an id is never missed nor confused with another. About one
/// absent id in 400 has a candidate to read at 10 M events. Positions past `u32::MAX` are
/// kept exactly.
#[derive(Default)]
pub(super) struct IdIndex {
    /// `fingerprints[p - 1]` is the fingerprint of the id at position `p`.
    pub(super) fingerprints: Vec<u32>,
    /// Positions, found by the hash of their fingerprint.
    pub(super) table: HashTable<u32>,
    pub(super) exact: FastMap<IdKey, u64>,
}

/// Where an id may be stored.
pub(super) enum IdLookup {
    /// Stored at this position.
    At(u64),
    /// Stored at one of these positions if the row's id is this id; otherwise not stored.
    Candidates(Vec<u64>),
}

pub(super) fn fingerprint(id: &Uuid) -> u32 {
    // Version-7 ids keep a timestamp in the high word; the low word is random.
    let (hi, lo) = id.as_u64_pair();
    ((hi ^ lo.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The table's hash of a fingerprint: spread over 64 bits (the table takes its bucket from
/// the low bits and a tag from the top seven).
pub(super) fn fingerprint_hash(fp: u32) -> u64 {
    u64::from(fp).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

impl IdIndex {
    /// Adds an id that is not stored yet.
    pub(super) fn insert(&mut self, id: &Uuid, position: u64) {
        match u32::try_from(position) {
            Ok(p) if p > 0 => {
                let fp = fingerprint(id);
                let i = p as usize - 1;
                if self.fingerprints.len() <= i {
                    self.fingerprints.resize(i + 1, 0);
                }
                self.fingerprints[i] = fp;
                let fps = &self.fingerprints;
                self.table.insert_unique(fingerprint_hash(fp), p, |&q| {
                    fingerprint_hash(fps[q as usize - 1])
                });
            }
            _ => {
                self.exact.insert(id.as_u64_pair(), position);
            }
        }
    }

    pub(super) fn lookup(&self, id: &Uuid) -> IdLookup {
        if let Some(&p) = self.exact.get(&id.as_u64_pair()) {
            return IdLookup::At(p);
        }
        let fp = fingerprint(id);
        IdLookup::Candidates(
            self.table
                .iter_hash(fingerprint_hash(fp))
                .filter(|&&p| self.fingerprints[p as usize - 1] == fp)
                .map(|&p| u64::from(p))
                .collect(),
        )
    }

    pub(super) fn reserve(&mut self, n: usize) {
        self.fingerprints.reserve(n);
        let fps = &self.fingerprints;
        self.table
            .reserve(n, |&q| fingerprint_hash(fps[q as usize - 1]));
    }
}

/// What lives in memory instead of secondary indexes.
#[derive(Default)]
pub(super) struct Index {
    /// Event id → position.
    pub(super) ids: IdIndex,
    /// Stream → positions, indexed by stream version. Stream names up to 24 bytes (every
    /// customer id seen so far) are held inline, with no allocation of their own.
    pub(super) streams: StrMap<Positions>,
}

/// A stream's positions in version order: 4 bytes each while they fit in 32 bits (the
/// first 4 billion events), 8 after; a header of 16 bytes and nothing inline but a
/// pointer (a `Vec<u64>` would be 24 bytes inline and 8 a position).
pub(super) enum Positions {
    Narrow(ThinVec<u32>),
    Wide(ThinVec<u64>),
}

impl Default for Positions {
    fn default() -> Positions {
        Positions::Narrow(ThinVec::new())
    }
}

impl Positions {
    pub(super) fn len(&self) -> usize {
        match self {
            Positions::Narrow(v) => v.len(),
            Positions::Wide(v) => v.len(),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (narrow, wide) = match self {
            Positions::Narrow(v) => (&v[..], &[][..]),
            Positions::Wide(v) => (&[][..], &v[..]),
        };
        narrow
            .iter()
            .map(|&p| u64::from(p))
            .chain(wide.iter().copied())
    }

    pub(super) fn push(&mut self, position: u64) {
        match self {
            Positions::Narrow(v) => match u32::try_from(position) {
                Ok(p) => v.push(p),
                Err(_) => {
                    let mut wide: ThinVec<u64> = v.iter().map(|&p| u64::from(p)).collect();
                    wide.push(position);
                    *self = Positions::Wide(wide);
                }
            },
            Positions::Wide(v) => v.push(position),
        }
    }

    pub(super) fn shrink_to_fit(&mut self) {
        match self {
            Positions::Narrow(v) => v.shrink_to_fit(),
            Positions::Wide(v) => v.shrink_to_fit(),
        }
    }
}

/// Builds the index of the events up to `until`, checking that positions are gapless and
/// stream versions contiguous; returns it with the last position.
pub(super) fn load_index(conn: &Connection, until: u64) -> Result<(Index, u64), StoreError> {
    let mut index = Index::default();
    let mut last = 0u64;
    let mut stmt = conn.prepare(
        "SELECT position, id, stream, stream_version FROM events WHERE position <= ?1 ORDER BY position",
    )?;
    let mut rows = stmt.query([until.min(i64::MAX as u64) as i64])?;
    while let Some(r) = rows.next()? {
        let position = r.get::<_, i64>(0)? as u64;
        let id: Vec<u8> = r.get(1)?;
        let stream: String = r.get(2)?;
        let version = r.get::<_, i64>(3)? as u64;
        check_contiguous(&mut last, position)?;
        let id = Uuid::from_slice(&id).map_err(|_| StoreError::Integrity {
            position,
            what: "the id is not 16 bytes".into(),
        })?;
        index.ids.insert(&id, position);
        let positions = index
            .streams
            .get_or_insert_with(&stream, Positions::default);
        if positions.len() as u64 != version {
            return Err(StoreError::Integrity {
                position,
                what: "stream versions are not contiguous".into(),
            });
        }
        positions.push(position);
    }
    // Loaded in one go: no room left for growth a stream may never need.
    for p in index.streams.values_mut() {
        p.shrink_to_fit();
    }
    index.streams.shrink_to_fit();
    Ok((index, last))
}
