//! Building a bbolt file bottom-up: leaves are written as soon as they fill, so only one page of
//! entries and the first key of each page of a bucket's lower level are held in memory; the branch
//! levels, the root bucket, the (empty) freelist and the two meta pages are written at the end.

use std::io::{Seek, SeekFrom, Write};

use super::{
    fnv1a64, BoltError, BRANCH_PAGE, BUCKET_LEAF, ELEMENT, FREELIST_PAGE, HEADER, LEAF_PAGE, MAGIC,
    META_PAGE, META_SUMMED, PAGE_SIZE, VERSION,
};

/// bbolt refuses longer keys (`MaxKeySize`).
const MAX_KEY: usize = 32768;
/// Pages 0 and 1 hold the metas, page 2 the freelist; data starts after them.
const FIRST_DATA_PAGE: u64 = 3;

/// One leaf entry waiting for its page.
struct Entry {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Writes a new bbolt database: call [`Writer::begin_bucket`], [`Writer::put`] for each key in
/// ascending order, [`Writer::end_bucket`], with bucket names ascending too, then [`Writer::finish`].
pub struct Writer<W: Write + Seek> {
    out: W,
    next_page: u64,
    /// The finished buckets: name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
    /// The bucket being written: its name, the entries of its unwritten leaf, that leaf's encoded
    /// size, and the first key and page id of each leaf written so far.
    open: Option<Vec<u8>>,
    leaf: Vec<Entry>,
    leaf_bytes: usize,
    leaves: Vec<(Vec<u8>, u64)>,
}

impl<W: Write + Seek> Writer<W> {
    /// Start a database in `out` (an empty, seekable file).
    pub fn new(mut out: W) -> Result<Self, BoltError> {
        out.seek(SeekFrom::Start(FIRST_DATA_PAGE * PAGE_SIZE as u64))?;
        Ok(Writer {
            out,
            next_page: FIRST_DATA_PAGE,
            buckets: Vec::new(),
            open: None,
            leaf: Vec::new(),
            leaf_bytes: HEADER,
            leaves: Vec::new(),
        })
    }

    /// Start the top-level bucket `name` (names must come in ascending byte order).
    pub fn begin_bucket(&mut self, name: &[u8]) -> Result<(), BoltError> {
        if self.open.is_some() {
            return Err(BoltError::Misuse("a bucket is already open".into()));
        }
        if let Some((last, _)) = self.buckets.last() {
            if name <= last.as_slice() {
                return Err(BoltError::Misuse(format!(
                    "bucket {:?} after {:?}: names must ascend",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(last)
                )));
            }
        }
        self.open = Some(name.to_vec());
        Ok(())
    }

    /// Add `key` = `value` to the open bucket; keys must ascend strictly.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), BoltError> {
        if self.open.is_none() {
            return Err(BoltError::Misuse("put outside a bucket".into()));
        }
        self.push(0, key, value)
    }

    /// Finish the open bucket: write its last leaf and its branch levels.
    pub fn end_bucket(&mut self) -> Result<(), BoltError> {
        let name = self
            .open
            .take()
            .ok_or_else(|| BoltError::Misuse("no bucket is open".into()))?;
        let root = self.close_tree()?;
        self.buckets.push((name, root));
        Ok(())
    }

    /// Write the root bucket, the empty freelist and both meta pages; returns the output, positioned
    /// at its end (the file is exactly the page count times [`PAGE_SIZE`] long).
    pub fn finish(mut self) -> Result<W, BoltError> {
        if self.open.is_some() {
            return Err(BoltError::Misuse("finish with a bucket still open".into()));
        }
        for (name, root) in std::mem::take(&mut self.buckets) {
            let mut header = [0u8; 16];
            header[..8].copy_from_slice(&root.to_le_bytes());
            self.push(BUCKET_LEAF, &name, &header)?;
        }
        let root = self.close_tree()?;
        let high_water = self.next_page;
        let mut freelist = vec![0u8; PAGE_SIZE];
        write_header(&mut freelist, 2, FREELIST_PAGE, 0, 0);
        self.out.seek(SeekFrom::Start(2 * PAGE_SIZE as u64))?;
        self.out.write_all(&freelist)?;
        // bbolt reads the meta with the higher txid first; both describe the same tree, as in a
        // freshly created database.
        for (page, txid) in [(0u64, 0u64), (1, 1)] {
            let meta = meta_page(page, root, 2, high_water, txid);
            self.out.seek(SeekFrom::Start(page * PAGE_SIZE as u64))?;
            self.out.write_all(&meta)?;
        }
        self.out
            .seek(SeekFrom::Start(high_water * PAGE_SIZE as u64))?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn push(&mut self, flags: u32, key: &[u8], value: &[u8]) -> Result<(), BoltError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(BoltError::Misuse(format!(
                "key of {} bytes (bbolt takes 1 to {MAX_KEY})",
                key.len()
            )));
        }
        let last = self
            .leaf
            .last()
            .map(|e| e.key.as_slice())
            .or_else(|| self.leaves.last().map(|(k, _)| k.as_slice()));
        if last.is_some_and(|l| key <= l) {
            return Err(BoltError::Misuse(format!(
                "key {:?} does not ascend",
                String::from_utf8_lossy(key)
            )));
        }
        let size = ELEMENT + key.len() + value.len();
        if !self.leaf.is_empty() && self.leaf_bytes + size > PAGE_SIZE {
            self.flush_leaf()?;
        }
        self.leaf_bytes += size;
        self.leaf.push(Entry {
            flags,
            key: key.to_vec(),
            value: value.to_vec(),
        });
        Ok(())
    }

    fn flush_leaf(&mut self) -> Result<(), BoltError> {
        let entries = std::mem::take(&mut self.leaf);
        self.leaf_bytes = HEADER;
        let id = self.next_page;
        let mut page = vec![0u8; pages_for(HEADER + sizes(&entries)) * PAGE_SIZE];
        let mut data = HEADER + ELEMENT * entries.len();
        for (i, e) in entries.iter().enumerate() {
            let at = HEADER + ELEMENT * i;
            put_u32(&mut page, at, e.flags);
            put_u32(&mut page, at + 4, (data - at) as u32);
            put_u32(&mut page, at + 8, e.key.len() as u32);
            put_u32(&mut page, at + 12, e.value.len() as u32);
            page[data..data + e.key.len()].copy_from_slice(&e.key);
            data += e.key.len();
            page[data..data + e.value.len()].copy_from_slice(&e.value);
            data += e.value.len();
        }
        let n = count(entries.len())?;
        let first = entries
            .into_iter()
            .next()
            .map(|e| e.key)
            .unwrap_or_default();
        self.write_page(page, LEAF_PAGE, n)?;
        self.leaves.push((first, id));
        Ok(())
    }

    /// Write the remaining leaf and the branch levels above the bucket's leaves; returns the root.
    fn close_tree(&mut self) -> Result<u64, BoltError> {
        if !self.leaf.is_empty() || self.leaves.is_empty() {
            self.flush_leaf()?;
        }
        let mut level = std::mem::take(&mut self.leaves);
        while level.len() > 1 {
            level = self.write_branches(level)?;
        }
        Ok(level[0].1)
    }

    /// Write one level of branch pages over `children`; returns the level above.
    fn write_branches(
        &mut self,
        children: Vec<(Vec<u8>, u64)>,
    ) -> Result<Vec<(Vec<u8>, u64)>, BoltError> {
        let mut parents = Vec::new();
        let mut group: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut bytes = HEADER;
        for child in children {
            let size = ELEMENT + child.0.len();
            if !group.is_empty() && bytes + size > PAGE_SIZE {
                parents.push(self.write_branch(std::mem::take(&mut group))?);
                bytes = HEADER;
            }
            bytes += size;
            group.push(child);
        }
        parents.push(self.write_branch(group)?);
        Ok(parents)
    }

    fn write_branch(&mut self, group: Vec<(Vec<u8>, u64)>) -> Result<(Vec<u8>, u64), BoltError> {
        let id = self.next_page;
        let body: usize = group.iter().map(|(k, _)| ELEMENT + k.len()).sum();
        let mut page = vec![0u8; pages_for(HEADER + body) * PAGE_SIZE];
        let mut data = HEADER + ELEMENT * group.len();
        for (i, (key, child)) in group.iter().enumerate() {
            let at = HEADER + ELEMENT * i;
            put_u32(&mut page, at, (data - at) as u32);
            put_u32(&mut page, at + 4, key.len() as u32);
            page[at + 8..at + 16].copy_from_slice(&child.to_le_bytes());
            page[data..data + key.len()].copy_from_slice(key);
            data += key.len();
        }
        self.write_page(page, BRANCH_PAGE, count(group.len())?)?;
        // A branch element's key is its child's first key, as bbolt's own spill makes it.
        let first = group.into_iter().next().map(|(k, _)| k).unwrap_or_default();
        Ok((first, id))
    }

    fn write_page(&mut self, mut page: Vec<u8>, flags: u16, count: u16) -> Result<(), BoltError> {
        let pages = page.len() / PAGE_SIZE;
        let overflow = u32::try_from(pages - 1)
            .map_err(|_| BoltError::Misuse("an entry larger than bbolt allows".into()))?;
        write_header(&mut page, self.next_page, flags, count, overflow);
        self.out.write_all(&page)?;
        self.next_page += pages as u64;
        Ok(())
    }
}

fn sizes(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| ELEMENT + e.key.len() + e.value.len())
        .sum()
}

fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(PAGE_SIZE).max(1)
}

fn count(n: usize) -> Result<u16, BoltError> {
    u16::try_from(n).map_err(|_| BoltError::Misuse(format!("{n} elements in one page")))
}

fn put_u32(page: &mut [u8], at: usize, v: u32) {
    page[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn write_header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

fn meta_page(page: u64, root: u64, freelist: u64, high_water: u64, txid: u64) -> Vec<u8> {
    let mut p = vec![0u8; PAGE_SIZE];
    write_header(&mut p, page, META_PAGE, 0, 0);
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&MAGIC.to_le_bytes());
    m.extend_from_slice(&VERSION.to_le_bytes());
    m.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes()); // flags
    m.extend_from_slice(&root.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes()); // root bucket sequence
    m.extend_from_slice(&freelist.to_le_bytes());
    m.extend_from_slice(&high_water.to_le_bytes());
    m.extend_from_slice(&txid.to_le_bytes());
    debug_assert_eq!(m.len(), META_SUMMED);
    let sum = fnv1a64(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    p[HEADER..HEADER + m.len()].copy_from_slice(&m);
    p
}
