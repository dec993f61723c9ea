//! Where durable data keys are (`data_keys` rows), and re-wrapping them under a new
//! master key.

use super::*;

/// Which data keys are durable, and where: a 64-bit fingerprint of `(customer,
/// generation)` → `data_keys.key_row` (16 bytes a key; a map by customer id cost about
/// 100 bytes a customer). A hit is checked against the row it names; keys whose
/// fingerprints collide are found by a scan of the table (expected never: a million keys
/// collide with a probability of about 3 in 10^8).
pub(super) struct KeyRows {
    pub(super) rows: FastMap<u64, i64>,
    pub(super) fingerprint: fn(&str, u32) -> u64,
}

impl Default for KeyRows {
    fn default() -> KeyRows {
        KeyRows {
            rows: FastMap::default(),
            fingerprint: key_fingerprint,
        }
    }
}

pub(super) fn key_fingerprint(customer: &str, generation: u32) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6b65_7972_6f77).hash_one((customer, generation))
}

impl KeyRows {
    /// The row of `(customer, generation)`, if this map knows it. `conn` must see the rows
    /// the map names (the writer's connection, inside or outside its transaction).
    pub(super) fn get(
        &self,
        conn: &Connection,
        customer: &str,
        generation: u32,
    ) -> Result<Option<i64>, StoreError> {
        let Some(&row) = self.rows.get(&(self.fingerprint)(customer, generation)) else {
            return Ok(None);
        };
        let named: (String, u32) = conn
            .prepare_cached("SELECT customer, generation FROM data_keys WHERE key_row = ?1")?
            .query_row([row], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if named.0 == customer && named.1 == generation {
            return Ok(Some(row));
        }
        // Another key has this fingerprint.
        Ok(conn
            .prepare_cached(
                "SELECT key_row FROM data_keys WHERE customer = ?1 AND generation = ?2",
            )?
            .query_row(params![customer, generation], |r| r.get(0))
            .optional()?)
    }

    /// Records where a key was written. Of keys sharing a fingerprint the first keeps the
    /// slot; the others are found by [`KeyRows::get`]'s scan.
    pub(super) fn insert(&mut self, customer: &str, generation: u32, row: i64) {
        self.rows
            .entry((self.fingerprint)(customer, generation))
            .or_insert(row);
    }

    /// Takes in the keys of a committed transaction.
    pub(super) fn merge(&mut self, other: KeyRows) {
        for (fp, row) in other.rows {
            self.rows.entry(fp).or_insert(row);
        }
    }
}

pub(super) fn load_key_rows(conn: &Connection) -> Result<KeyRows, StoreError> {
    let mut rows = KeyRows::default();
    let mut stmt = conn.prepare("SELECT key_row, customer, generation FROM data_keys")?;
    let mut q = stmt.query([])?;
    while let Some(r) = q.next()? {
        let customer: &str = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
        let (row, generation) = (r.get(0)?, r.get(2)?);
        rows.insert(customer, generation, row);
    }
    Ok(rows)
}

pub(super) fn rewrap(
    conn: &mut Connection,
    key_rows: &KeyRows,
    keys: Vec<WrappedKey>,
    master_id: &str,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare("UPDATE data_keys SET wrapped = ?2, master_key_id = ?3 WHERE key_row = ?1 AND wrapped IS NOT NULL")?;
        for k in &keys {
            let row = key_rows
                .get(&tx, &k.customer, k.generation)?
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "no stored data key {} generation {}",
                        k.customer, k.generation
                    ))
                })?;
            stmt.execute(params![row, k.wrapped, master_id])?;
        }
        tx.execute("INSERT INTO meta(key, value) VALUES ('master_key_id', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [master_id])?;
    }
    tx.commit()?;
    Ok(())
}
