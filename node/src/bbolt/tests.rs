use std::io::{Seek, SeekFrom, Write};

use super::*;

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn build(buckets: &[(&str, Entries)]) -> std::fs::File {
    let mut w = Writer::new(tempfile::tempfile().unwrap()).unwrap();
    for (name, entries) in buckets {
        w.begin_bucket(name.as_bytes()).unwrap();
        for (k, v) in entries {
            w.put(k, v).unwrap();
        }
        w.end_bucket().unwrap();
    }
    w.finish().unwrap()
}

fn read_all(r: &Reader, name: &str) -> Entries {
    let mut out = Vec::new();
    let found = r
        .for_each::<BoltError>(name.as_bytes(), |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
    assert!(found, "bucket {name}");
    out
}

fn open(f: std::fs::File) -> Reader {
    let len = f.metadata().unwrap().len();
    Reader::open(f, len).unwrap()
}

#[test]
fn many_keys_large_values_and_empty_buckets_read_back_in_order() {
    // Enough keys for two branch levels, values that overflow one page, and an empty bucket.
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..40_000u32)
        .map(|i| {
            (
                format!("k{i:08}").into_bytes(),
                vec![(i % 251) as u8; (i % 7) as usize * 3],
            )
        })
        .collect();
    let big: Vec<(Vec<u8>, Vec<u8>)> = (0..5u8)
        .map(|i| (vec![b'b', i], vec![i; 10_000 + usize::from(i) * 3000]))
        .collect();
    let f = build(&[
        ("alpha", big.clone()),
        ("empty", vec![]),
        ("key", keys.clone()),
    ]);
    assert_eq!(f.metadata().unwrap().len() % PAGE_SIZE as u64, 0);
    let r = open(f);
    assert_eq!(
        r.buckets().unwrap(),
        vec![b"alpha".to_vec(), b"empty".to_vec(), b"key".to_vec()]
    );
    assert_eq!(read_all(&r, "key"), keys);
    assert_eq!(read_all(&r, "alpha"), big);
    assert!(read_all(&r, "empty").is_empty());
    assert!(!r.for_each::<BoltError>(b"nope", |_, _| Ok(())).unwrap());
}

#[test]
fn the_writer_refuses_keys_and_buckets_out_of_order() {
    let mut w = Writer::new(tempfile::tempfile().unwrap()).unwrap();
    w.begin_bucket(b"b").unwrap();
    w.put(b"2", b"").unwrap();
    assert!(matches!(w.put(b"1", b""), Err(BoltError::Misuse(_))));
    assert!(matches!(w.put(b"2", b""), Err(BoltError::Misuse(_))));
    w.end_bucket().unwrap();
    assert!(matches!(w.begin_bucket(b"a"), Err(BoltError::Misuse(_))));
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..2000u32)
        .map(|i| (i.to_be_bytes().to_vec(), vec![7; 40]))
        .collect();
    let f = build(&[("key", entries)]);
    let len = f.metadata().unwrap().len();
    // Truncated: the meta pages promise more pages than the file holds.
    let truncated = tempfile::tempfile().unwrap();
    std::io::copy(&mut &f, &mut &truncated).unwrap();
    truncated.set_len(len - PAGE_SIZE as u64).unwrap();
    assert!(matches!(
        Reader::open(truncated, len - PAGE_SIZE as u64),
        Err(BoltError::Invalid(_))
    ));
    // Not bbolt at all.
    let mut junk = tempfile::tempfile().unwrap();
    junk.write_all(&vec![0x5a; 3 * PAGE_SIZE]).unwrap();
    assert!(matches!(
        Reader::open(junk, 3 * PAGE_SIZE as u64),
        Err(BoltError::Invalid(_))
    ));
    // Every data page overwritten with garbage in turn: reading fails cleanly or succeeds.
    let pages = len / PAGE_SIZE as u64;
    for p in 3..pages {
        let mut g = tempfile::tempfile().unwrap();
        (&f).seek(SeekFrom::Start(0)).unwrap();
        std::io::copy(&mut &f, &mut g).unwrap();
        g.seek(SeekFrom::Start(p * PAGE_SIZE as u64 + 8)).unwrap();
        g.write_all(&[0xff; 64]).unwrap();
        let r = Reader::open(g, len).unwrap();
        let _ = r.for_each::<BoltError>(b"key", |_, _| Ok(()));
    }
}
