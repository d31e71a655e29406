//! The small part of the bbolt file format that etcd's snapshots need: a [`Writer`] that builds a fresh
//! database file from buckets given in key order, and a [`Reader`] that walks the buckets of any bbolt
//! file (written by us, or by etcd 3.4/3.5) in key order. Nothing else of bbolt (transactions, updates,
//! free-page reuse) is implemented: a snapshot is written once and read once.
//!
//! Why not the `bbolt-rs` crate: it is MIT-licensed and a faithful port of bbolt 1.3.10, but it brings
//! about 25 dependencies (clap, rand, fake, bumpalo, memmap2, ...), 95 `unsafe` blocks and one
//! maintainer, builds each write transaction in memory (a snapshot would be one such transaction), and
//! lacks `Tx.copy`; a bottom-up writer plus a bounds-checked reader is the few hundred lines we need.
//!
//! Layout (bbolt v1.3/v1.4, version 2, little-endian as on every platform etcd ships for):
//! - every page starts with a 16-byte header: page id u64, flags u16, element count u16, overflow u32
//!   (how many more pages the page runs into);
//! - pages 0 and 1 are meta pages: magic, version, page size, flags, the root bucket (root page id,
//!   sequence), the freelist page id, the high-water mark (page count), the transaction id and an
//!   FNV-1a/64 checksum of the fields before it; a reader takes the valid one with the higher txid;
//! - leaf elements are 16 bytes (flags u32, pos u32, ksize u32, vsize u32), branch elements 16 bytes
//!   (pos u32, ksize u32, child page id u64); `pos` counts from the element itself to its key, the
//!   value follows the key;
//! - a bucket is a leaf value flagged 0x01 holding (root page id u64, sequence u64); root 0 means the
//!   bucket's single page follows inline in the value.

mod read;
mod write;

pub use read::Reader;
pub use write::Writer;

/// The page size etcd's files have on x86-64 and arm64 Linux (bbolt uses the OS page size).
pub const PAGE_SIZE: usize = 4096;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
/// The meta fields covered by the checksum: magic..txid.
const META_SUMMED: usize = 56;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
const BUCKET_LEAF: u32 = 0x01;

/// Errors reading or writing a bbolt file.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a bbolt database, or is damaged; the text says where.
    #[error("invalid database: {0}")]
    Invalid(String),
    /// The caller broke the writer's contract (keys out of order, a key too large).
    #[error("bbolt writer: {0}")]
    Misuse(String),
}

/// bbolt's meta checksum: FNV-1a 64 over the bytes before the checksum field.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests;
