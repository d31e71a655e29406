//! The WAL's on-disk format (see wal.rs for the layout) and the rules that read a segment back: where
//! each append ends, and whether a bad append is a crash's torn tail or corruption. Pure functions
//! over a segment's bytes, so every case is unit-tested without files.

/// The segment format this build writes and reads.
pub const WAL_VERSION: u32 = 1;
pub(super) const MAGIC: &[u8; 8] = b"CAIRNWAL";
/// Segment header: magic, version, CRC32 of both.
pub(super) const SEGMENT_HEADER: usize = 16;
/// Record header: length, CRC32, kind.
pub(super) const HEADER: usize = 9;
/// An append header record: its header and the u64 length of the records that follow.
pub(super) const APPEND_HEADER: usize = HEADER + 8;
/// The unit a disk writes whole or not at all; a torn write leaves whole sectors unwritten (zeros).
const SECTOR: usize = 512;
pub(super) const KIND_ENTRY: u8 = 1;
pub(super) const KIND_COMMITTED: u8 = 2;
pub(super) const KIND_TRUNCATE: u8 = 3;
const KIND_APPEND: u8 = 4;

/// The checksum a record carries: CRC32 of its kind and payload.
fn checksum(kind: u8, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    crc.finalize()
}

/// Add one record to `out`.
pub(super) fn record(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(kind, payload).to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// A buffer for one append: room for its header, which [`seal_append`] fills in.
pub(super) fn begin_append() -> Vec<u8> {
    vec![0; APPEND_HEADER]
}

/// Write the append header of a buffer from [`begin_append`] once its records are in.
pub(super) fn seal_append(buf: &mut [u8]) {
    let body = (buf.len() - APPEND_HEADER) as u64;
    let mut head = Vec::with_capacity(APPEND_HEADER);
    record(KIND_APPEND, &body.to_le_bytes(), &mut head);
    buf[..APPEND_HEADER].copy_from_slice(&head);
}

/// The header every segment starts with.
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&WAL_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment's header is not this build's.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderError {
    /// No valid header at all.
    Missing,
    /// A valid header of another format version.
    Version(u32),
}

/// Check the segment header at the start of `data`.
pub(super) fn check_header(data: &[u8]) -> Result<(), HeaderError> {
    let Some(h) = data.get(..SEGMENT_HEADER) else {
        return Err(HeaderError::Missing);
    };
    let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if &h[..8] != MAGIC || crc32fast::hash(&h[..12]) != crc {
        return Err(HeaderError::Missing);
    }
    match u32::from_le_bytes([h[8], h[9], h[10], h[11]]) {
        WAL_VERSION => Ok(()),
        v => Err(HeaderError::Version(v)),
    }
}

/// One record of an append that checked out.
#[derive(Debug)]
pub(super) struct Record<'a> {
    pub kind: u8,
    /// Offset of the record's header in the segment.
    pub at: usize,
    pub payload: &'a [u8],
}

/// A bad append: where it starts, the record that failed, why, and where it ends if its header said.
#[derive(Debug)]
pub(super) struct Bad {
    pub append_at: usize,
    pub record_at: usize,
    pub why: String,
    pub end: Option<usize>,
}

/// What is at an offset of a segment.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// A whole append that checks out, and the offset after it.
    Append(Vec<Record<'a>>, usize),
    /// Zeros up to the end of the segment.
    End,
    /// An append that does not check out.
    Bad(Bad),
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// The record at `at`, which must end by `limit`.
fn record_at(data: &[u8], at: usize, limit: usize) -> Result<(u8, &[u8]), String> {
    if at + HEADER > limit {
        return Err("the record header runs past the end".into());
    }
    let len = u32_at(data, at) as usize;
    let crc = u32_at(data, at + 4);
    let kind = data[at + 8];
    let Some(payload) = data
        .get(at + HEADER..at + HEADER + len)
        .filter(|_| at + HEADER + len <= limit)
    else {
        return Err(format!("the record's length {len} runs past the end"));
    };
    if checksum(kind, payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((kind, payload))
}

/// Read the append starting at `at`.
pub(super) fn next_append(data: &[u8], at: usize) -> Step<'_> {
    let bad = |record_at: usize, why: String, end: Option<usize>| {
        Step::Bad(Bad {
            append_at: at,
            record_at,
            why,
            end,
        })
    };
    let rest = &data[at.min(data.len())..];
    if rest.iter().take(HEADER).all(|&b| b == 0) {
        // Only a zero header makes the (long) check of the rest worth it.
        if rest.iter().all(|&b| b == 0) {
            return Step::End;
        }
        return bad(at, "no append header where data follows".into(), None);
    }
    let len = match record_at(data, at, data.len()) {
        Ok((KIND_APPEND, p)) if p.len() == 8 => {
            u64::from_le_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]]) as usize
        }
        Ok((kind, _)) => {
            return bad(
                at,
                format!("expected an append header, found a record of kind {kind}"),
                None,
            )
        }
        Err(why) => return bad(at, format!("append header: {why}"), None),
    };
    let end = at.saturating_add(APPEND_HEADER).saturating_add(len);
    if end > data.len() {
        return bad(
            at,
            format!("the append of {len} bytes runs past the end of the file"),
            Some(end),
        );
    }
    let mut records = Vec::new();
    let mut off = at + APPEND_HEADER;
    while off < end {
        match record_at(data, off, end) {
            Ok((kind @ (KIND_ENTRY | KIND_COMMITTED | KIND_TRUNCATE), payload)) => {
                records.push(Record {
                    kind,
                    at: off,
                    payload,
                });
                off += HEADER + payload.len();
            }
            Ok((kind, _)) => return bad(off, format!("unknown record kind {kind}"), Some(end)),
            Err(why) => return bad(off, why, Some(end)),
        }
    }
    Step::Append(records, end)
}

/// What to do about a bad append.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The torn tail of a crash: drop the bytes from the append's start to `until`.
    Torn { until: usize },
    /// Corruption at `offset`.
    Corrupt { offset: usize, why: String },
}

/// Decide whether the bad append `bad` of a segment's `data` is a torn tail (see wal.rs). `last` is
/// whether this is the last segment.
pub(super) fn judge(data: &[u8], bad: Bad, last: bool) -> Verdict {
    let corrupt = |why: String| Verdict::Corrupt {
        offset: bad.record_at,
        why,
    };
    if !last {
        return corrupt(format!(
            "{} (in a segment that later segments follow)",
            bad.why
        ));
    }
    let nonzero_end = data.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let covers = match bad.end {
        Some(end) => {
            if nonzero_end > end {
                return corrupt(format!("{}; data follows the append", bad.why));
            }
            end
        }
        None => {
            if let Some(next) = find_append_header(data, bad.append_at + 1) {
                return corrupt(format!(
                    "{}; a valid append follows at offset {next}",
                    bad.why
                ));
            }
            nonzero_end
        }
    };
    if covers > data.len() || has_unwritten_sector(data, bad.append_at, covers) {
        Verdict::Torn {
            until: nonzero_end.max(bad.append_at),
        }
    } else {
        corrupt(format!(
            "{}; every sector of the append was written, so this is not an append cut short by a crash",
            bad.why
        ))
    }
}

/// Whether some sector-aligned piece of `data[start..end]` is all zeros (never written).
fn has_unwritten_sector(data: &[u8], start: usize, end: usize) -> bool {
    let end = end.min(data.len());
    let mut at = start;
    while at < end {
        let next = ((at / SECTOR) + 1) * SECTOR;
        if data[at..next.min(end)].iter().all(|&b| b == 0) {
            return true;
        }
        at = next;
    }
    false
}

/// The offset of the first valid append header at or after `from`.
fn find_append_header(data: &[u8], from: usize) -> Option<usize> {
    let eight = 8u32.to_le_bytes();
    (from..data.len().saturating_sub(APPEND_HEADER - 1)).find(|&at| {
        data[at..at + 4] == eight
            && data[at + 8] == KIND_APPEND
            && matches!(record_at(data, at, data.len()), Ok((KIND_APPEND, _)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment of `size` bytes holding the given appends (each a list of entry payloads); returns
    /// it and each append's start offset.
    fn segment(appends: &[Vec<Vec<u8>>], size: usize) -> (Vec<u8>, Vec<usize>) {
        let mut data = segment_header().to_vec();
        let mut starts = Vec::new();
        for a in appends {
            starts.push(data.len());
            let mut buf = begin_append();
            for p in a {
                record(KIND_ENTRY, p, &mut buf);
            }
            seal_append(&mut buf);
            data.extend_from_slice(&buf);
        }
        data.resize(size, 0);
        (data, starts)
    }

    /// Replay `data` to its end: the number of whole appends, and the verdict on a bad one.
    fn replay(data: &[u8]) -> (usize, Option<Verdict>) {
        let mut at = SEGMENT_HEADER;
        let mut n = 0;
        loop {
            match next_append(data, at) {
                Step::Append(_, end) => {
                    n += 1;
                    at = end;
                }
                Step::End => return (n, None),
                Step::Bad(b) => return (n, Some(judge(data, b, true))),
            }
        }
    }

    fn payloads(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8 + 1; len]).collect()
    }

    #[test]
    fn header_names_the_version_and_refuses_others() {
        let mut h = segment_header().to_vec();
        assert_eq!(check_header(&h), Ok(()));
        h[8] = 2;
        let crc = crc32fast::hash(&h[..12]);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_header(&h), Err(HeaderError::Version(2)));
        assert_eq!(check_header(&[0; 16]), Err(HeaderError::Missing));
        assert_eq!(check_header(b"short"), Err(HeaderError::Missing));
    }

    #[test]
    fn whole_appends_replay_and_zeros_end_the_segment() {
        let (data, _) = segment(&[payloads(2, 40), payloads(1, 900)], 8192);
        assert_eq!(replay(&data), (2, None));
    }

    #[test]
    fn an_append_whose_later_sectors_were_never_written_is_a_torn_tail() {
        let (mut data, starts) = segment(&[payloads(1, 40), payloads(3, 700)], 8192);
        let last = starts[1];
        // The first sector of the last append reached the disk, the rest did not.
        let cut = (last / SECTOR + 1) * SECTOR;
        data[cut..].fill(0);
        assert_eq!(replay(&data), (1, Some(Verdict::Torn { until: cut })));
    }

    #[test]
    fn an_append_whose_first_sector_was_never_written_is_a_torn_tail() {
        let (mut data, starts) = segment(&[payloads(1, 40), payloads(3, 700)], 8192);
        let last = starts[1];
        let sector_end = (last / SECTOR + 1) * SECTOR;
        data[last..sector_end].fill(0);
        let (n, verdict) = replay(&data);
        assert_eq!(n, 1);
        assert!(matches!(verdict, Some(Verdict::Torn { .. })), "{verdict:?}");
    }

    #[test]
    fn flipped_bytes_in_the_middle_are_corruption_at_their_record() {
        let (mut data, starts) =
            segment(&[payloads(1, 40), payloads(1, 40), payloads(1, 40)], 8192);
        let hit = starts[1] + APPEND_HEADER + HEADER + 10;
        data[hit..hit + 16].iter_mut().for_each(|b| *b ^= 0xff);
        let (n, verdict) = replay(&data);
        assert_eq!(n, 1);
        match verdict {
            Some(Verdict::Corrupt { offset, why }) => {
                assert_eq!(offset, starts[1] + APPEND_HEADER);
                assert!(
                    why.contains("checksum mismatch") && why.contains("data follows"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_corrupt_append_header_with_appends_after_it_is_corruption() {
        let (mut data, starts) =
            segment(&[payloads(1, 40), payloads(1, 40), payloads(1, 40)], 8192);
        data[starts[1]..starts[1] + 4].fill(0);
        match replay(&data) {
            (1, Some(Verdict::Corrupt { offset, why })) => {
                assert_eq!(offset, starts[1]);
                assert!(
                    why.contains(&format!("a valid append follows at offset {}", starts[2])),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flipped_bytes_in_the_last_append_are_corruption_when_all_of_it_was_written() {
        let (mut data, starts) = segment(&[payloads(1, 40), payloads(2, 300)], 8192);
        let hit = starts[1] + APPEND_HEADER + HEADER + 100;
        data[hit..hit + 16].iter_mut().for_each(|b| *b ^= 0xff);
        assert!(matches!(replay(&data), (1, Some(Verdict::Corrupt { .. }))));
    }

    #[test]
    fn stray_bytes_after_the_end_are_a_torn_append_whose_first_sector_was_not_written() {
        let (mut data, _) = segment(&[payloads(1, 40)], 8192);
        data[5000] = 1;
        assert_eq!(replay(&data), (1, Some(Verdict::Torn { until: 5001 })));
    }

    #[test]
    fn bytes_after_a_bad_append_whose_header_says_where_it_ends_are_corruption() {
        let (mut data, starts) = segment(&[payloads(1, 40), payloads(3, 700)], 8192);
        let cut = (starts[1] / SECTOR + 1) * SECTOR;
        data[cut..].fill(0);
        data[7000] = 1;
        assert!(matches!(replay(&data), (1, Some(Verdict::Corrupt { .. }))));
    }

    #[test]
    fn a_bad_append_before_the_last_segment_is_corruption() {
        let (mut data, starts) = segment(&[payloads(1, 40), payloads(3, 700)], 8192);
        let cut = (starts[1] / SECTOR + 1) * SECTOR;
        data[cut..].fill(0);
        let Step::Bad(b) = next_append(&data, starts[1]) else {
            panic!("the cut append must be bad");
        };
        assert!(matches!(judge(&data, b, false), Verdict::Corrupt { .. }));
    }
}
