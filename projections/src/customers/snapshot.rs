//! Customers in a snapshot: profiles in chunks that decode on several threads.

use super::*;

/// Profiles per chunk of a snapshot. Chunks are written one after the other and can be
/// read back on several threads: decoding the profiles was nine tenths of loading a million
/// customers' state.
pub const SNAPSHOT_PROFILES_PER_CHUNK: usize = 1 << 16;

/// The fewest bytes a profile takes in postcard: one per field, as an empty one does.
pub(super) fn profile_bytes_min() -> usize {
    postcard::to_stdvec(&Profile::default())
        .expect("a profile serializes")
        .len()
}

/// Bytes written as postcard writes a `Vec<u8>`, read back borrowed as `&[u8]`.
pub(super) struct Blob(pub(super) Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

/// Decodes one chunk of profiles (a postcard sequence) into `slots`, which must be as many.
pub(super) fn decode_chunk(slots: &mut [Profile], bytes: &[u8]) -> Result<(), postcard::Error> {
    let (count, mut rest) = postcard::take_from_bytes::<usize>(bytes)?;
    if count != slots.len() {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    for slot in slots {
        let (p, more) = postcard::take_from_bytes::<Profile>(rest)?;
        *slot = p;
        rest = more;
    }
    Ok(())
}

impl Customers {
    /// The state as bytes (postcard), identical for the same events however they were
    /// batched: maps are written in key order. The profiles go in chunks of
    /// [`SNAPSHOT_PROFILES_PER_CHUNK`], each a byte string holding a postcard sequence.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Ordered<'a> {
            position: u64,
            profiles: usize,
            /// In number order, which the numbering depends on.
            chunks: Vec<Blob>,
            post_authors: &'a InternedMap<u32>,
            complaint_authors: &'a InternedMap<u32>,
            names: &'a Names,
            agent_marks: &'a BTreeMap<u32, super::AgentMark>,
        }
        let chunks = self
            .profiles
            .chunks(SNAPSHOT_PROFILES_PER_CHUNK)
            .map(|c| Blob(postcard::to_stdvec(c).expect("profiles serialize")))
            .collect();
        let o = Ordered {
            position: self.position,
            profiles: self.profiles.len(),
            chunks,
            post_authors: &self.post_authors,
            complaint_authors: &self.complaint_authors,
            names: &self.names,
            agent_marks: &self.agent_marks,
        };
        postcard::to_stdvec(&o).expect("projection state serializes")
    }

    /// Reads what [`Customers::snapshot_bytes`] wrote, the chunks of profiles on up to
    /// `threads` threads (the state is the same either way; 0 counts as 1).
    pub fn from_snapshot_bytes(bytes: &[u8], threads: usize) -> Result<Customers, postcard::Error> {
        // The fields in the order `snapshot_bytes` writes them (postcard is not
        // self-describing).
        #[derive(Deserialize)]
        struct Owned<'a> {
            position: u64,
            profiles: usize,
            #[serde(borrow)]
            chunks: Vec<&'a [u8]>,
            post_authors: InternedMap<u32>,
            complaint_authors: InternedMap<u32>,
            names: Names,
            agent_marks: BTreeMap<u32, super::AgentMark>,
        }
        let o: Owned = postcard::from_bytes(bytes)?;
        // A count the bytes cannot hold, or chunks that do not make it up, are not a state
        // this code writes; refused before anything is reserved for them.
        let bad = postcard::Error::DeserializeBadEncoding;
        if o.profiles > bytes.len() / profile_bytes_min()
            || o.chunks.len() != o.profiles.div_ceil(SNAPSHOT_PROFILES_PER_CHUNK)
        {
            return Err(bad);
        }
        // Filled in place: one vector of the exact size, no copies of a million profiles.
        let mut profiles = Vec::new();
        profiles.resize_with(o.profiles, Profile::default);
        let threads = threads.clamp(1, o.chunks.len().max(1));
        let mut jobs: Vec<Vec<(&mut [Profile], &[u8])>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (i, job) in profiles
            .chunks_mut(SNAPSHOT_PROFILES_PER_CHUNK)
            .zip(o.chunks.iter().copied())
            .enumerate()
        {
            jobs[i % threads].push(job);
        }
        let decode_all = |job: Vec<(&mut [Profile], &[u8])>| {
            job.into_iter()
                .try_for_each(|(slots, bytes)| decode_chunk(slots, bytes))
        };
        // The first share on this thread: with one thread asked for, no other is started
        // (what a thread allocates stays in its allocator heap after it ends).
        std::thread::scope(|scope| {
            let mut jobs = jobs.into_iter();
            let own = jobs.next().unwrap_or_default();
            let others: Vec<_> = jobs
                .map(|job| scope.spawn(move || decode_all(job)))
                .collect();
            let own = decode_all(own);
            others
                .into_iter()
                .map(|d| d.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .fold(own, Result::and)
        })?;
        // Two profiles of one id: not a state this code writes.
        let numbers =
            crate::interned::numbered_table(profiles.len(), |n| profiles[n as usize].id.as_str())
                .map_err(|_| bad)?;
        let mut community_sizes: BTreeMap<u32, u32> = BTreeMap::new();
        for p in &profiles {
            for n in p.communities.numbers() {
                *community_sizes.entry(n).or_default() += 1;
            }
        }
        Ok(Customers {
            names: o.names,
            community_sizes,
            numbers: Numbers(numbers),
            profiles,
            post_authors: o.post_authors,
            complaint_authors: o.complaint_authors,
            identity: Identity::default(),
            people: BTreeMap::new(),
            agent_marks: o.agent_marks,
            position: o.position,
        })
    }

    /// The customers whose profile `ev` changed (after it was applied), sorted: its own
    /// customer and those it names or credits (referee, referrer of a buyer, authors
    /// replied to or echoed, mentioned customers, the complainant of a resolution).
    pub fn touched(&self, ev: &FoldEvent) -> Vec<String> {
        if ev.event_type.is_operator() {
            return Vec::new();
        }
        let mut out = vec![ev.customer.clone()];
        match &ev.data {
            Facts::Referral(d) => out.extend(d.referee.clone()),
            Facts::AgentJoined(d) => out.extend(d.upline.clone()),
            Facts::Purchase(d) => {
                if let Some(r) = self.get(&ev.customer).and_then(|p| self.referred_by(p)) {
                    out.push(r.to_owned());
                }
                // A sale to an end customer makes its agent bring purchases: the agent's
                // upline's influence may change.
                if let Some(seller) = d.sold_by.as_deref() {
                    out.push(seller.to_owned());
                    if let Some(r) = self.get(seller).and_then(|p| self.referred_by(p)) {
                        out.push(r.to_owned());
                    }
                }
            }
            Facts::ComplaintResolved(d) => out.extend(
                d.complaint_id
                    .as_deref()
                    .and_then(|c| self.complaint_authors.get(c))
                    .map(|a| self.id_of(a).to_owned()),
            ),
            Facts::Post(d) => {
                out.extend(
                    d.reply_to
                        .as_deref()
                        .and_then(|r| self.post_authors.get(r))
                        .map(|a| self.id_of(a).to_owned()),
                );
                out.extend(
                    d.echoes
                        .as_deref()
                        .and_then(|c| self.complaint_authors.get(c))
                        .map(|a| self.id_of(a).to_owned()),
                );
                out.extend(d.mentions.iter().cloned());
            }
            _ => {}
        }
        out.sort();
        out.dedup();
        out
    }

    /// The names of a set (a profile's communities or tags), sorted.
    pub fn names_of<'a>(&'a self, set: &NameSet) -> Vec<&'a str> {
        let mut v: Vec<&str> = set.0.iter().map(|&n| self.names.name(n)).collect();
        v.sort_unstable();
        v
    }

    /// Whether a set (a profile's communities or tags) holds `name`.
    pub fn has_name(&self, set: &NameSet, name: &str) -> bool {
        self.names.find(name).is_some_and(|n| set.contains(n))
    }

    pub fn region<'a>(&'a self, p: &Profile) -> Option<&'a str> {
        p.region.map(|n| self.names.name(n.get() - 1))
    }

    pub fn channel<'a>(&'a self, p: &Profile) -> Option<&'a str> {
        p.channel.map(|n| self.names.name(n.get() - 1))
    }

    /// The id of the customer who referred `p`.
    pub fn referred_by<'a>(&'a self, p: &Profile) -> Option<&'a str> {
        p.referred_by.map(|n| self.id_of(n))
    }

    /// The ids of the customers `p` referred, in the order of the referrals.
    pub fn referees<'a>(&'a self, p: &'a Profile) -> impl Iterator<Item = &'a str> + 'a {
        p.referees.iter().map(|&n| self.id_of(n))
    }

    /// The author of a post, if it is known.
    pub fn post_author(&self, post: &str) -> Option<&str> {
        self.post_authors.get(post).map(|a| self.id_of(a))
    }

    /// Referees of `p` who bought at least once up to `as_of`.
    pub fn referees_who_bought(&self, p: &Profile, as_of: DateTime<Utc>) -> usize {
        p.referees
            .iter()
            .filter(|&&r| self.by_number(r).is_some_and(|x| x.orders_until(as_of) > 0))
            .count()
    }

    /// Referees and recruits of `p` who brought end-customer purchases by `as_of`.
    pub fn referees_bringing_end_customers(&self, p: &Profile, as_of: DateTime<Utc>) -> usize {
        p.referees
            .iter()
            .filter(|&&r| self.brought_end_customer_purchases(r, as_of))
            .count()
    }

    /// The influence score (documented in `docs/projections.md`): 3 per referee or
    /// recruit who brought end-customer purchases (bought before becoming an agent, or
    /// sold to end customers as one) + 2 per echo of their complaints + 1 per reply to
    /// their posts + 1 per mention. A recruit who only bought stock brings nothing, so a
    /// recruiting chain does not make its organisers influential.
    pub fn influence(&self, p: &Profile, as_of: DateTime<Utc>) -> u64 {
        3 * self.referees_bringing_end_customers(p, as_of) as u64
            + 2 * p.echoes_received as u64
            + p.replies_received as u64
            + p.mentions_received as u64
    }
}
