//! The object index a delta compares against: for every object a run copied (or found already
//! copied), 16 bytes — a 64-bit hash of its identity (key, version) and a 64-bit hash of its
//! content (key, version, ETag, size).
//!
//! Why two hashes and 16 bytes: 100 M objects make a 1.6 GB index, so a delta of 100 M + 100 M
//! rows fits one Lambda (see `docs/inventory.md` for the measured peak). The content hash covers
//! the identity too, so an object is only taken for unchanged when *both* 64-bit hashes agree
//! with the previous run: a missed copy needs a 2^-64 collision. An identity collision alone
//! only causes an extra copy (two objects look like one changed object), never a missed one.
//!
//! The hashes are xxh3 with fixed seeds over bytes that can't be confused: `0xFF`/`0xFE`
//! separate fields and never occur in UTF-8, so (key `a`, version `b`) and (key `ab`, no
//! version) hash differently. The serialized form is stable: `FERRYIX1`, the entry count (u64
//! little-endian), then the entries sorted by (identity, content), each as two little-endian
//! u64.

use twox_hash::XxHash3_64;

use crate::inventory::row::InventoryRow;

/// The serialized index starts with these 8 bytes.
pub const INDEX_MAGIC: &[u8; 8] = b"FERRYIX1";
/// Bytes one object takes in the index (in memory and in S3).
pub const INDEX_ENTRY_BYTES: usize = 16;
const HEADER_BYTES: usize = 16;
const SEED_IDENTITY: u64 = 0x6665_7272_792d_6964; // "ferry-id"
const SEED_CONTENT: u64 = 0x6665_7272_792d_6374; // "ferry-ct"
const FIELD: u8 = 0xFF;
const ABSENT: u8 = 0xFE;

/// One object: hashes of its identity and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexEntry {
    pub identity: u64,
    pub content: u64,
}

/// What the previous run's index says about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not in the previous index.
    New,
    /// There, with another ETag or size.
    Changed,
    Unchanged,
}

/// Hashes rows into [`IndexEntry`]s, reusing one buffer.
#[derive(Debug, Default)]
pub struct EntryHasher {
    buf: Vec<u8>,
}

impl EntryHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of an inventory row.
    pub fn row(&mut self, row: &InventoryRow) -> IndexEntry {
        self.entry(
            &row.key,
            row.version_id.as_deref(),
            row.etag.as_deref(),
            row.size,
        )
    }

    /// Only (key, version): what a failed task names.
    pub fn identity(&mut self, key: &str, version_id: Option<&str>) -> u64 {
        self.fill_identity(key, version_id);
        XxHash3_64::oneshot_with_seed(SEED_IDENTITY, &self.buf)
    }

    pub fn entry(
        &mut self,
        key: &str,
        version_id: Option<&str>,
        etag: Option<&str>,
        size: Option<u64>,
    ) -> IndexEntry {
        self.fill_identity(key, version_id);
        let identity = XxHash3_64::oneshot_with_seed(SEED_IDENTITY, &self.buf);
        match etag {
            // Quotes are not part of the ETag (HeadObject adds them, inventories don't).
            Some(e) => {
                self.buf.push(FIELD);
                self.buf.extend_from_slice(e.trim_matches('"').as_bytes());
            }
            None => self.buf.push(ABSENT),
        }
        match size {
            Some(s) => {
                self.buf.push(FIELD);
                self.buf.extend_from_slice(&s.to_le_bytes());
            }
            None => self.buf.push(ABSENT),
        }
        let content = XxHash3_64::oneshot_with_seed(SEED_CONTENT, &self.buf);
        IndexEntry { identity, content }
    }

    fn fill_identity(&mut self, key: &str, version_id: Option<&str>) {
        self.buf.clear();
        self.buf.extend_from_slice(key.as_bytes());
        match version_id {
            // `null` and an empty version are both the null version.
            Some(v) if !v.is_empty() && v != "null" => {
                self.buf.push(FIELD);
                self.buf.extend_from_slice(v.as_bytes());
            }
            _ => self.buf.push(ABSENT),
        }
    }
}

/// Why a stored index can't be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("the delta index is {0} bytes: not a Ferry index (it starts with FERRYIX1, a count and 16-byte entries)")]
    BadLength(usize),
    #[error("the delta index does not start with FERRYIX1: it was not written by Ferry")]
    BadMagic,
    #[error("the delta index says {expected} entries but holds {actual}")]
    CountMismatch { expected: u64, actual: u64 },
    #[error("the delta index is not sorted at entry {0}: it is damaged")]
    Unsorted(usize),
    #[error(
        "the delta index has more than {} objects, the most one index holds",
        u32::MAX
    )]
    TooLarge,
}

/// A sorted set of [`IndexEntry`]s with a bucket table for lookups in about one cache miss
/// (identities are uniform hashes, so their top bits spread evenly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectIndex {
    entries: Vec<IndexEntry>,
    /// `table[b]` = first entry whose identity's top `bits` bits are ≥ b.
    table: Vec<u32>,
    shift: u32,
}

impl ObjectIndex {
    /// Sorts and de-duplicates `entries`.
    pub fn from_entries(mut entries: Vec<IndexEntry>) -> Result<Self, IndexError> {
        entries.sort_unstable();
        entries.dedup();
        Self::from_sorted(entries)
    }

    fn from_sorted(entries: Vec<IndexEntry>) -> Result<Self, IndexError> {
        if entries.len() > u32::MAX as usize {
            return Err(IndexError::TooLarge);
        }
        // About four entries per bucket: the table costs 1 byte per object.
        let bits = (usize::BITS - entries.len().leading_zeros()).saturating_sub(2);
        let bits = bits.clamp(1, 30);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut table = Vec::with_capacity(buckets + 1);
        let mut i = 0usize;
        for b in 0..buckets {
            while i < entries.len() && ((entries[i].identity >> shift) as usize) < b {
                i += 1;
            }
            table.push(i as u32);
        }
        table.push(entries.len() as u32);
        Ok(Self {
            entries,
            table,
            shift,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Bytes held: entries plus the bucket table.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * INDEX_ENTRY_BYTES + self.table.capacity() * 4
    }

    /// The entries whose identity is `identity` (normally one; two only on a hash collision).
    fn same_identity(&self, identity: u64) -> &[IndexEntry] {
        let b = (identity >> self.shift) as usize;
        let (lo, hi) = (self.table[b] as usize, self.table[b + 1] as usize);
        let bucket = &self.entries[lo..hi];
        let start = bucket.partition_point(|e| e.identity < identity);
        let end = start + bucket[start..].partition_point(|e| e.identity == identity);
        &bucket[start..end]
    }

    /// Whether `entry` is new, changed or unchanged since this index.
    pub fn change(&self, entry: IndexEntry) -> Change {
        if self.entries.is_empty() {
            return Change::New;
        }
        let same = self.same_identity(entry.identity);
        if same.is_empty() {
            Change::New
        } else if same.iter().any(|e| e.content == entry.content) {
            Change::Unchanged
        } else {
            Change::Changed
        }
    }

    /// Drops every entry with one of these identities (objects whose copy failed, so the next
    /// run copies them again).
    pub fn remove_identities(&mut self, identities: &[u64]) -> usize {
        if identities.is_empty() {
            return 0;
        }
        let mut gone: Vec<u64> = identities.to_vec();
        gone.sort_unstable();
        let before = self.entries.len();
        let mut entries = std::mem::take(&mut self.entries);
        entries.retain(|e| gone.binary_search(&e.identity).is_err());
        let removed = before - entries.len();
        // Rebuilding the table of an index that fit can't fail.
        if let Ok(rebuilt) = Self::from_sorted(entries) {
            *self = rebuilt;
        }
        removed
    }

    /// The stable serialized form (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.entries.len() * INDEX_ENTRY_BYTES);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.identity.to_le_bytes());
            out.extend_from_slice(&e.content.to_le_bytes());
        }
        out
    }

    /// Reads [`ObjectIndex::to_bytes`]'s output, checking it whole.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() < HEADER_BYTES
            || !(bytes.len() - HEADER_BYTES).is_multiple_of(INDEX_ENTRY_BYTES)
        {
            return Err(IndexError::BadLength(bytes.len()));
        }
        if &bytes[..8] != INDEX_MAGIC {
            return Err(IndexError::BadMagic);
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&bytes[8..16]);
        let expected = u64::from_le_bytes(count);
        let body = &bytes[HEADER_BYTES..];
        let actual = (body.len() / INDEX_ENTRY_BYTES) as u64;
        if expected != actual {
            return Err(IndexError::CountMismatch { expected, actual });
        }
        let mut entries = Vec::with_capacity(body.len() / INDEX_ENTRY_BYTES);
        let mut word = [0u8; 8];
        for chunk in body.chunks_exact(INDEX_ENTRY_BYTES) {
            word.copy_from_slice(&chunk[..8]);
            let identity = u64::from_le_bytes(word);
            word.copy_from_slice(&chunk[8..]);
            let content = u64::from_le_bytes(word);
            let e = IndexEntry { identity, content };
            if entries.last().is_some_and(|prev: &IndexEntry| *prev >= e) {
                return Err(IndexError::Unsorted(entries.len()));
            }
            entries.push(e);
        }
        Self::from_sorted(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(h: &mut EntryHasher, key: &str, v: Option<&str>, etag: &str, size: u64) -> IndexEntry {
        h.entry(key, v, Some(etag), Some(size))
    }

    #[test]
    fn fields_are_not_confused() {
        let mut h = EntryHasher::new();
        assert_ne!(h.identity("ab", None), h.identity("a", Some("b")));
        assert_eq!(h.identity("a", None), h.identity("a", Some("null")));
        assert_eq!(
            entry(&mut h, "k", None, "\"e\"", 1),
            entry(&mut h, "k", None, "e", 1)
        );
        let a = entry(&mut h, "k", None, "e", 1);
        let b = entry(&mut h, "k", None, "e", 2);
        assert_eq!(a.identity, b.identity);
        assert_ne!(a.content, b.content);
    }

    #[test]
    fn change_and_round_trip() {
        let mut h = EntryHasher::new();
        let old: Vec<IndexEntry> = (0..1000)
            .map(|i| entry(&mut h, &format!("k{i}"), None, "e", i))
            .collect();
        let index = ObjectIndex::from_entries(old.clone()).unwrap();
        assert_eq!(index.len(), 1000);
        for e in &old {
            assert_eq!(index.change(*e), Change::Unchanged);
        }
        assert_eq!(
            index.change(entry(&mut h, "k5", None, "other", 5)),
            Change::Changed
        );
        assert_eq!(
            index.change(entry(&mut h, "new", None, "e", 5)),
            Change::New
        );
        let back = ObjectIndex::from_bytes(&index.to_bytes()).unwrap();
        assert_eq!(back, index);
        assert_eq!(index.to_bytes().len(), 16 + 1000 * INDEX_ENTRY_BYTES);
    }

    #[test]
    fn damaged_indexes_are_refused() {
        let mut h = EntryHasher::new();
        let index = ObjectIndex::from_entries(
            (0..3)
                .map(|i| entry(&mut h, "k", Some(&i.to_string()), "e", 1))
                .collect(),
        )
        .unwrap();
        let bytes = index.to_bytes();
        assert_eq!(
            ObjectIndex::from_bytes(&bytes[..20]),
            Err(IndexError::BadLength(20))
        );
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert_eq!(ObjectIndex::from_bytes(&bad), Err(IndexError::BadMagic));
        let mut swapped = bytes.clone();
        let (a, b) = swapped[16..].split_at_mut(16);
        a.swap_with_slice(&mut b[..16]);
        assert!(matches!(
            ObjectIndex::from_bytes(&swapped),
            Err(IndexError::Unsorted(1))
        ));
        let mut count = bytes;
        count[8] = 9;
        assert!(matches!(
            ObjectIndex::from_bytes(&count),
            Err(IndexError::CountMismatch {
                expected: 9,
                actual: 3
            })
        ));
    }

    #[test]
    fn removed_identities_become_new() {
        let mut h = EntryHasher::new();
        let a = entry(&mut h, "a", None, "e", 1);
        let b = entry(&mut h, "b", None, "e", 1);
        let mut index = ObjectIndex::from_entries(vec![a, b]).unwrap();
        assert_eq!(index.remove_identities(&[h.identity("a", None)]), 1);
        assert_eq!(index.change(a), Change::New);
        assert_eq!(index.change(b), Change::Unchanged);
    }
}
