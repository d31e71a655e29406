use super::export::{write, ClusterRecord};
use super::import::{load, status};
use super::*;
use crate::bbolt::Reader;
use crate::mvcc::test_writes::{compact, del, grant, put};
use crate::mvcc::Store;

fn history() -> Store {
    let mut s = Store::new();
    grant(&mut s, 0x1234, 600);
    for i in 0..50 {
        put(&mut s, &format!("k{}", i % 10), &"v".repeat(i), 0);
    }
    put(&mut s, "leased", "x", 0x1234);
    del(&mut s, "k3");
    compact(&mut s, 20);
    put(&mut s, "big", &"b".repeat(20_000), 0);
    s
}

fn exported(s: &Store) -> Reader {
    let members = vec![MemberRecord {
        id: 0x8e9e05c52164694d,
        peer_urls: vec!["http://localhost:2380".into()],
        is_learner: false,
        name: "default".into(),
        client_urls: vec!["http://localhost:2379".into()],
    }];
    let cluster = ClusterRecord {
        members,
        applied_index: 77,
        term: 3,
    };
    let f = write(s, &cluster, tempfile::tempfile().unwrap()).unwrap();
    let len = f.metadata().unwrap().len();
    Reader::open(f, len).unwrap()
}

#[test]
fn an_exported_store_loads_back_with_every_version_lease_and_revision() {
    let s = history();
    let db = exported(&s);
    let st = status(&db).unwrap();
    assert_eq!(st.revision, s.revision());
    assert_eq!(st.total_size % crate::bbolt::PAGE_SIZE as u64, 0);
    let mut back = Store::new();
    let loaded = load(&db, &mut back).unwrap();
    assert_eq!(loaded.revision, s.revision());
    assert_eq!(loaded.compact_revision, 20);
    assert_eq!(loaded.leases, 1);
    assert_eq!(back.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
    let info = back.lease_info(0x1234).unwrap();
    assert_eq!(info.keys, vec![b"leased".to_vec()]);
    let names = db.buckets().unwrap();
    assert_eq!(names.len(), BUCKETS.len());
    let mut members = Vec::new();
    db.for_each::<DbError>(b"members", |k, v| {
        members.push((
            String::from_utf8_lossy(k).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        members,
        vec![(
            "8e9e05c52164694d".to_string(),
            r#"{"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]}"#.to_string()
        )]
    );
}

#[test]
fn revision_keys_are_etcds() {
    let k = revision_key(5, 1, true);
    assert_eq!(
        hex::encode(&k),
        "0000000000000005_0000000000000001t"
            .replace('_', "5f")
            .replace('t', "74")
    );
    assert_eq!(parse_revision_key(&k).unwrap(), (5, 1, true));
    assert!(parse_revision_key(b"short").is_err());
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    let mut c = Crc32c::default();
    c.update(b"1234567");
    c.update(b"89");
    assert_eq!(c.sum(), 0xE306_9283);
}
