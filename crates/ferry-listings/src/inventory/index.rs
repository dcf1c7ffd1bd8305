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

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use twox_hash::XxHash3_64;

use crate::inventory::row::InventoryRow;

/// The serialized index starts with these 8 bytes.
pub const INDEX_MAGIC: &[u8; 8] = b"FERRYIX1";
/// Bytes one object takes in the index (in memory and in S3).
pub const INDEX_ENTRY_BYTES: usize = 16;
const HEADER_BYTES: usize = 16;
/// Objects one stored shard holds at most (about 128 MiB): what one GetObject or PutObject
/// carries, far under S3's 5 GB single-PUT limit, and what a worker diffs on its own.
pub const SHARD_TARGET_OBJECTS: usize = 8 << 20;
/// At most 2^16 shards (half a trillion objects at the target size).
pub const MAX_SHARD_BITS: u32 = 16;
const SEED_IDENTITY: u64 = 0x6665_7272_792d_6964; // "ferry-id"
const SEED_CONTENT: u64 = 0x6665_7272_792d_6374; // "ferry-ct"
const FIELD: u8 = 0xFF;
const ABSENT: u8 = 0xFE;

/// One object: hashes of its identity and its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    #[error(
        "shard {shard} of {shards} holds an object of another shard (entry {entry}): it is damaged"
    )]
    WrongShard {
        shard: usize,
        shards: usize,
        entry: usize,
    },
    #[error("the delta index's shards came out of order (shard {0}): they must be read in order")]
    ShardOrder(usize),
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

    /// Where the entries whose identity is `identity` are (normally one; two only on a hash
    /// collision): a search inside its table bucket only, about one cache miss.
    fn identity_range(&self, identity: u64) -> std::ops::Range<usize> {
        let b = (identity >> self.shift) as usize;
        let (lo, hi) = (self.table[b] as usize, self.table[b + 1] as usize);
        let bucket = &self.entries[lo..hi];
        let start = bucket.partition_point(|e| e.identity < identity);
        let end = start + bucket[start..].partition_point(|e| e.identity == identity);
        lo + start..lo + end
    }

    fn same_identity(&self, identity: u64) -> &[IndexEntry] {
        &self.entries[self.identity_range(identity)]
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

    /// As [`ObjectIndex::change`], with the position of the unchanged entry (to mark it in a
    /// [`SeenSet`] rather than copy it into the next index).
    pub fn lookup(&self, entry: IndexEntry) -> Lookup {
        if self.entries.is_empty() {
            return Lookup::New;
        }
        let range = self.identity_range(entry.identity);
        if range.is_empty() {
            return Lookup::New;
        }
        let start = range.start;
        match self.entries[range]
            .iter()
            .position(|e| e.content == entry.content)
        {
            Some(i) => Lookup::Unchanged(start + i),
            None => Lookup::Changed,
        }
    }

    /// The index of the next run, built in place from this one: the entries `seen` marks (found
    /// unchanged) and `added` (new and changed objects), sorted and de-duplicated. Linear: the
    /// kept entries stay sorted and `added` is merged in from the back. Memory: this index plus
    /// `added`, never a second copy of the whole index.
    pub fn into_next(self, seen: &SeenSet, mut added: Vec<IndexEntry>) -> Result<Self, IndexError> {
        let mut entries = self.entries;
        drop(self.table);
        let mut i = 0usize;
        entries.retain(|_| {
            let keep = seen.is_marked(i);
            i += 1;
            keep
        });
        added.sort_unstable();
        added.dedup();
        let kept = entries.len();
        let total = kept + added.len();
        entries.resize(total, IndexEntry::default());
        let (mut k, mut a, mut w) = (kept, added.len(), total);
        while a > 0 {
            w -= 1;
            if k > 0 && entries[k - 1] > added[a - 1] {
                entries[w] = entries[k - 1];
                k -= 1;
            } else {
                entries[w] = added[a - 1];
                a -= 1;
            }
        }
        entries.dedup();
        Self::from_sorted(entries)
    }

    /// The shard count (as bits: 2^bits shards) an index of `objects` is stored in: shards of at
    /// most [`SHARD_TARGET_OBJECTS`] when identities spread evenly (they are hashes).
    pub fn shard_bits_for(objects: usize) -> u32 {
        let shards = objects.div_ceil(SHARD_TARGET_OBJECTS).max(1);
        (usize::BITS - (shards - 1).leading_zeros()).min(MAX_SHARD_BITS)
    }

    /// The entries of each of the 2^`bits` shards: shard `s` holds the identities whose top
    /// `bits` bits are `s`, a contiguous range since entries are sorted by identity.
    pub fn shard_ranges(&self, bits: u32) -> Vec<Range<usize>> {
        let shards = 1usize << bits;
        let mut bounds = Vec::with_capacity(shards + 1);
        bounds.push(0);
        for s in 1..shards {
            let first = (s as u64) << (64 - bits);
            bounds.push(self.entries.partition_point(|e| e.identity < first));
        }
        bounds.push(self.entries.len());
        bounds.windows(2).map(|w| w[0]..w[1]).collect()
    }

    /// The stored form of entries `range` (a shard): [`ObjectIndex::to_bytes`]'s format.
    pub fn slice_to_bytes(&self, range: Range<usize>) -> Vec<u8> {
        entries_to_bytes(&self.entries[range])
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
        entries_to_bytes(&self.entries)
    }

    /// Reads [`ObjectIndex::to_bytes`]'s output, checking it whole.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        let mut entries = Vec::new();
        append_entries(bytes, &mut entries)?;
        Self::from_sorted(entries)
    }
}

/// Reads a stored index shard by shard into one index, without holding the stored bytes of
/// more than one shard at a time: [`ShardedIndexReader::push`] each shard's bytes in shard
/// order, then [`ShardedIndexReader::finish`]. Every shard is checked whole, and each entry
/// must belong to its shard.
#[derive(Debug)]
pub struct ShardedIndexReader {
    bits: u32,
    next_shard: usize,
    end_shard: usize,
    entries: Vec<IndexEntry>,
}

impl ShardedIndexReader {
    /// `objects`: the count the descriptor gives, to reserve memory once.
    pub fn new(bits: u32, objects: usize) -> Self {
        Self::for_shards(bits, 0..1usize << bits, objects)
    }

    /// Only shards `shards` (of 2^`bits`), pushed in order: one fan-out worker's share.
    pub fn for_shards(bits: u32, shards: Range<usize>, objects: usize) -> Self {
        Self {
            bits,
            next_shard: shards.start,
            end_shard: shards.end,
            entries: Vec::with_capacity(objects),
        }
    }

    pub fn push(&mut self, shard: usize, bytes: &[u8]) -> Result<(), IndexError> {
        if shard != self.next_shard || shard >= self.end_shard {
            return Err(IndexError::ShardOrder(shard));
        }
        let first = self.entries.len();
        append_entries(bytes, &mut self.entries)?;
        let shards = 1usize << self.bits;
        for (i, e) in self.entries[first..].iter().enumerate() {
            let of = if self.bits == 0 {
                0
            } else {
                (e.identity >> (64 - self.bits)) as usize
            };
            if of != shard {
                return Err(IndexError::WrongShard {
                    shard,
                    shards,
                    entry: i,
                });
            }
        }
        self.next_shard += 1;
        Ok(())
    }

    /// Entries read so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn finish(self) -> Result<ObjectIndex, IndexError> {
        if self.next_shard != self.end_shard {
            return Err(IndexError::ShardOrder(self.next_shard));
        }
        ObjectIndex::from_sorted(self.entries)
    }
}

/// The last successful run's index as a delta compares against it: shared read-only by the
/// threads reading data files, which mark what they find unchanged in `seen` rather than
/// collect it again (the next index is then this one's marked entries plus the new and changed
/// ones, [`DeltaBase::into_next`]: about 16 bytes per object in memory, not 32).
#[derive(Debug, Clone)]
pub struct DeltaBase {
    pub index: Arc<ObjectIndex>,
    pub seen: Arc<SeenSet>,
}

impl DeltaBase {
    pub fn new(index: ObjectIndex) -> Self {
        let seen = Arc::new(SeenSet::new(index.len()));
        Self {
            index: Arc::new(index),
            seen,
        }
    }

    /// The next run's index: the entries found unchanged and `added`. Call once every clone
    /// is dropped (otherwise the index is copied first).
    pub fn into_next(self, added: Vec<IndexEntry>) -> Result<ObjectIndex, IndexError> {
        let index = Arc::unwrap_or_clone(self.index);
        index.into_next(&self.seen, added)
    }
}

/// Which of an index's entries a run found unchanged: one bit per entry, set from any thread.
#[derive(Debug)]
pub struct SeenSet {
    words: Vec<AtomicU64>,
}

impl SeenSet {
    /// For an index of `len` entries (about `len / 8` bytes).
    pub fn new(len: usize) -> Self {
        Self {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn mark(&self, position: usize) {
        if let Some(word) = self.words.get(position / 64) {
            word.fetch_or(1 << (position % 64), Ordering::Relaxed);
        }
    }

    pub fn is_marked(&self, position: usize) -> bool {
        self.words
            .get(position / 64)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1 << (position % 64)) != 0)
    }

    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }
}

/// What [`ObjectIndex::lookup`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    New,
    Changed,
    /// Unchanged: the entry's position in the index.
    Unchanged(usize),
}

fn entries_to_bytes(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + entries.len() * INDEX_ENTRY_BYTES);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.identity.to_le_bytes());
        out.extend_from_slice(&e.content.to_le_bytes());
    }
    out
}

/// Checks one stored index (or shard) whole and appends its entries, which must be sorted and
/// sort after what `entries` holds.
fn append_entries(bytes: &[u8], entries: &mut Vec<IndexEntry>) -> Result<(), IndexError> {
    {
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
        entries.reserve(body.len() / INDEX_ENTRY_BYTES);
        let first = entries.len();
        let mut word = [0u8; 8];
        for chunk in body.chunks_exact(INDEX_ENTRY_BYTES) {
            word.copy_from_slice(&chunk[..8]);
            let identity = u64::from_le_bytes(word);
            word.copy_from_slice(&chunk[8..]);
            let content = u64::from_le_bytes(word);
            let e = IndexEntry { identity, content };
            if entries.last().is_some_and(|prev: &IndexEntry| *prev >= e) {
                return Err(IndexError::Unsorted(entries.len() - first));
            }
            entries.push(e);
        }
        Ok(())
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

    fn sample(n: usize) -> ObjectIndex {
        let mut h = EntryHasher::new();
        ObjectIndex::from_entries(
            (0..n)
                .map(|i| entry(&mut h, &format!("k{i}"), None, "e", i as u64))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn the_next_index_is_the_seen_entries_and_the_added_ones() {
        let mut h = EntryHasher::new();
        let previous = sample(200);
        let seen = SeenSet::new(previous.len());
        // Every third object seen unchanged; two changed, three new (one listed twice).
        let mut expected: Vec<IndexEntry> = Vec::new();
        for (i, e) in previous.entries().iter().enumerate() {
            if i % 3 == 0 {
                assert!(matches!(previous.lookup(*e), Lookup::Unchanged(p) if p == i));
                seen.mark(i);
                expected.push(*e);
            }
        }
        let changed = entry(&mut h, "k1", None, "other", 1);
        assert_eq!(previous.lookup(changed), Lookup::Changed);
        let new: Vec<IndexEntry> = (0..3)
            .map(|i| entry(&mut h, &format!("new{i}"), None, "e", 1))
            .collect();
        assert_eq!(previous.lookup(new[0]), Lookup::New);
        let mut added = vec![changed, new[2], new[0], new[1], new[0]];
        expected.extend([changed, new[0], new[1], new[2]]);
        expected.sort_unstable();
        assert_eq!(seen.count(), expected.len() as u64 - 4);
        let next = previous
            .into_next(&seen, std::mem::take(&mut added))
            .unwrap();
        assert_eq!(next.entries(), expected.as_slice());
        for e in &expected {
            assert_eq!(next.change(*e), Change::Unchanged);
        }
    }

    #[test]
    fn shards_are_contiguous_ranges_by_the_top_bits_and_read_back_whole() {
        let index = sample(5000);
        assert_eq!(ObjectIndex::shard_bits_for(0), 0);
        assert_eq!(ObjectIndex::shard_bits_for(SHARD_TARGET_OBJECTS), 0);
        assert_eq!(ObjectIndex::shard_bits_for(SHARD_TARGET_OBJECTS + 1), 1);
        assert_eq!(ObjectIndex::shard_bits_for(5 * SHARD_TARGET_OBJECTS), 3);
        for bits in [0, 1, 3, 6] {
            let ranges = index.shard_ranges(bits);
            assert_eq!(ranges.len(), 1 << bits);
            assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 5000);
            let mut reader = ShardedIndexReader::new(bits, index.len());
            for (n, range) in ranges.iter().enumerate() {
                for e in &index.entries()[range.clone()] {
                    let of = if bits == 0 {
                        0
                    } else {
                        (e.identity >> (64 - bits)) as usize
                    };
                    assert_eq!(of, n);
                }
                reader
                    .push(n, &index.slice_to_bytes(range.clone()))
                    .unwrap();
            }
            assert_eq!(reader.finish().unwrap(), index);
        }
    }

    #[test]
    fn shards_out_of_place_or_missing_are_refused() {
        let index = sample(1000);
        let ranges = index.shard_ranges(2);
        let bytes: Vec<Vec<u8>> = ranges
            .iter()
            .map(|r| index.slice_to_bytes(r.clone()))
            .collect();
        // Shard 1's bytes given as shard 0.
        let mut reader = ShardedIndexReader::new(2, 1000);
        assert!(matches!(
            reader.push(0, &bytes[1]),
            Err(IndexError::WrongShard {
                shard: 0,
                shards: 4,
                ..
            })
        ));
        // Out of order.
        let mut reader = ShardedIndexReader::new(2, 1000);
        assert_eq!(reader.push(1, &bytes[1]), Err(IndexError::ShardOrder(1)));
        // One missing at the end.
        let mut reader = ShardedIndexReader::new(2, 1000);
        for (n, b) in bytes.iter().enumerate().take(3) {
            reader.push(n, b).unwrap();
        }
        assert_eq!(reader.finish(), Err(IndexError::ShardOrder(3)));
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
