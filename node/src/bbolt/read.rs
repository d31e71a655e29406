//! Reading a bbolt file without mapping it: pages are read with `pread` as the walk needs them, every
//! offset is checked against the page and the file, so a damaged file is an error, never a panic.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::{
    fnv1a64, u16_at, u32_at, u64_at, BoltError, BRANCH_PAGE, BUCKET_LEAF, ELEMENT, HEADER,
    LEAF_PAGE, MAGIC, META_SUMMED, VERSION,
};

/// Deeper trees than this are taken for a cycle in a damaged file (a real tree of 4 KiB pages
/// holding a petabyte is about 8 levels deep).
const MAX_DEPTH: usize = 32;

/// What a walk calls with each leaf element: its flags, key and value.
type Visit<'a> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), BoltError> + 'a;

/// A bbolt database opened for reading.
pub struct Reader {
    file: File,
    len: u64,
    page_size: u64,
    high_water: u64,
    root: u64,
}

/// Where a bucket's entries are: a page of the file, or a page stored inline in its parent.
enum Tree {
    Page(u64),
    Inline(Vec<u8>),
}

impl Reader {
    /// Open `file`, of which only the first `len` bytes are the database (a snapshot's hash trailer
    /// follows them).
    pub fn open(file: File, len: u64) -> Result<Reader, BoltError> {
        let mut first = vec![0u8; HEADER + 64];
        if len < first.len() as u64 {
            return Err(BoltError::Invalid(format!(
                "file size too small ({len} bytes)"
            )));
        }
        file.read_exact_at(&mut first, 0)?;
        let m0 = Meta::parse(&first);
        // Page 1's position depends on the page size, which page 0 tells unless it is damaged.
        let page_size = match &m0 {
            Ok(m) => m.page_size,
            Err(_) => super::PAGE_SIZE as u64,
        };
        let m1 = if len >= page_size + first.len() as u64 {
            file.read_exact_at(&mut first, page_size)?;
            Meta::parse(&first)
        } else {
            Err("file too short for meta page 1".to_string())
        };
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(a), Err(b)) => {
                return Err(BoltError::Invalid(format!(
                    "no valid meta page (page 0: {a}; page 1: {b})"
                )))
            }
        };
        if meta.high_water.saturating_mul(meta.page_size) > len {
            return Err(BoltError::Invalid(format!(
                "the database has {} pages of {} bytes but the file holds only {len} bytes (truncated?)",
                meta.high_water, meta.page_size
            )));
        }
        Ok(Reader {
            file,
            len,
            page_size: meta.page_size,
            high_water: meta.high_water,
            root: meta.root,
        })
    }

    /// The database's size as bbolt reports it (`tx.Size()`): pages in use times the page size.
    pub fn size(&self) -> u64 {
        self.high_water * self.page_size
    }

    /// The names of the top-level buckets, in key order.
    pub fn buckets(&self) -> Result<Vec<Vec<u8>>, BoltError> {
        let mut names = Vec::new();
        self.walk(&Tree::Page(self.root), 0, &mut |flags, key, _| {
            if flags & BUCKET_LEAF != 0 {
                names.push(key.to_vec());
            }
            Ok(())
        })?;
        Ok(names)
    }

    /// Call `f` with every key and value of the top-level bucket `name`, in key order (nested
    /// buckets are skipped). Returns false when there is no such bucket.
    pub fn for_each<E: From<BoltError>>(
        &self,
        name: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut found = None;
        self.walk(&Tree::Page(self.root), 0, &mut |flags, key, value| {
            if flags & BUCKET_LEAF != 0 && key == name {
                found = Some(bucket_tree(key, value)?);
            }
            Ok(())
        })?;
        let Some(tree) = found else {
            return Ok(false);
        };
        // The caller's error stops the walk through a placeholder and is returned as it was.
        let mut failed = None;
        let walked = self.walk(&tree, 0, &mut |flags, key, value| {
            if flags & BUCKET_LEAF == 0 {
                if let Err(e) = f(key, value) {
                    failed = Some(e);
                    return Err(BoltError::Misuse("stopped".into()));
                }
            }
            Ok(())
        });
        match (failed, walked) {
            (Some(e), _) => Err(e),
            (None, Err(e)) => Err(e.into()),
            (None, Ok(())) => Ok(true),
        }
    }

    fn walk(&self, tree: &Tree, depth: usize, f: &mut Visit<'_>) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(BoltError::Invalid(
                "the page tree is deeper than any real one (a cycle?)".into(),
            ));
        }
        let (owned, id);
        let page: &[u8] = match tree {
            Tree::Page(p) => {
                owned = self.page(*p)?;
                id = *p;
                &owned
            }
            Tree::Inline(bytes) => {
                id = 0;
                bytes
            }
        };
        let flags = u16_at(page, 8);
        let n = usize::from(u16_at(page, 10));
        if HEADER + n * ELEMENT > page.len() {
            return Err(bad(id, "its element count runs past the page"));
        }
        for i in 0..n {
            let at = HEADER + i * ELEMENT;
            match flags {
                LEAF_PAGE => {
                    let (eflags, pos, ksize, vsize) = (
                        u32_at(page, at),
                        u32_at(page, at + 4) as usize,
                        u32_at(page, at + 8) as usize,
                        u32_at(page, at + 12) as usize,
                    );
                    let start = at + pos;
                    let end = start
                        .checked_add(ksize)
                        .and_then(|k| k.checked_add(vsize))
                        .filter(|e| *e <= page.len())
                        .ok_or_else(|| bad(id, "an element runs past the page"))?;
                    f(
                        eflags,
                        &page[start..start + ksize],
                        &page[start + ksize..end],
                    )?;
                }
                BRANCH_PAGE => {
                    let child = u64_at(page, at + 8);
                    self.walk(&Tree::Page(child), depth + 1, f)?;
                }
                other => {
                    return Err(bad(
                        id,
                        &format!("unexpected page type {other:#x} in a bucket"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Read page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>, BoltError> {
        if id < 2 || id >= self.high_water {
            return Err(bad(id, "it is outside the database"));
        }
        let at = id * self.page_size;
        let mut page = vec![0u8; self.page_size as usize];
        self.file.read_exact_at(&mut page, at)?;
        if u64_at(&page, 0) != id {
            return Err(bad(
                id,
                &format!("its header says page {}", u64_at(&page, 0)),
            ));
        }
        let overflow = u64::from(u32_at(&page, 12));
        if overflow > 0 {
            let total = (overflow + 1) * self.page_size;
            if id + overflow >= self.high_water || at + total > self.len {
                return Err(bad(id, "its overflow runs past the database"));
            }
            page.resize(total as usize, 0);
            self.file
                .read_exact_at(&mut page[self.page_size as usize..], at + self.page_size)?;
        }
        Ok(page)
    }
}

/// The tree of a bucket from its leaf value: (root page u64, sequence u64) and, for root 0, the
/// bucket's page inline.
fn bucket_tree(name: &[u8], value: &[u8]) -> Result<Tree, BoltError> {
    if value.len() < 16 {
        return Err(BoltError::Invalid(format!(
            "bucket {:?}: header of {} bytes",
            String::from_utf8_lossy(name),
            value.len()
        )));
    }
    match u64_at(value, 0) {
        0 if value.len() >= 16 + HEADER => Ok(Tree::Inline(value[16..].to_vec())),
        0 => Err(BoltError::Invalid(format!(
            "bucket {:?}: inline page too short",
            String::from_utf8_lossy(name)
        ))),
        root => Ok(Tree::Page(root)),
    }
}

fn bad(page: u64, why: &str) -> BoltError {
    BoltError::Invalid(format!("page {page}: {why}"))
}

struct Meta {
    page_size: u64,
    root: u64,
    high_water: u64,
    txid: u64,
}

impl Meta {
    /// The meta fields of a meta page (header included), or why it is not valid.
    fn parse(page: &[u8]) -> Result<Meta, String> {
        let m = &page[HEADER..];
        if u32_at(m, 0) != MAGIC {
            return Err("not a bbolt file (bad magic)".into());
        }
        if u32_at(m, 4) != VERSION {
            return Err(format!(
                "bbolt format version {} (expected {VERSION})",
                u32_at(m, 4)
            ));
        }
        if u64_at(m, META_SUMMED) != fnv1a64(&m[..META_SUMMED]) {
            return Err("checksum mismatch".into());
        }
        let page_size = u64::from(u32_at(m, 8));
        if !(512..=1 << 20).contains(&page_size) {
            return Err(format!("page size {page_size}"));
        }
        Ok(Meta {
            page_size,
            root: u64_at(m, 16),
            high_water: u64_at(m, 40),
            txid: u64_at(m, 48),
        })
    }
}
