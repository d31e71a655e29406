//! Member and cluster IDs derived exactly as etcd derives them (`membership.NewMember`, `RaftCluster.genID`),
//! so the same flags give the same IDs as etcd and clusters with different tokens never merge.

use sha1::{Digest, Sha1};

/// A member's ID from its peer URLs and the cluster token: SHA-1 over the sorted URLs joined with ""
/// followed by the token; the first 8 bytes, big-endian.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    first_8_bytes(&h.finalize())
}

/// The cluster ID: SHA-1 over the sorted member IDs, each 8 bytes big-endian; the first 8 bytes.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    first_8_bytes(&h.finalize())
}

fn first_8_bytes(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values read from real etcd 3.4.23 started with
    // --initial-cluster infra0=http://127.0.0.1:42380 --initial-cluster-token etcd-cluster-1
    // (`etcdctl member list -w json`).
    #[test]
    fn ids_match_etcd_3_4() {
        let m = member_id(&["http://127.0.0.1:42380".to_string()], "etcd-cluster-1");
        assert_eq!(m, 5032027080688003127);
        assert_eq!(format!("{m:x}"), "45d559f8148de837");
        assert_eq!(cluster_id(&[m]), 5213788464314584123);
    }

    #[test]
    fn ids_do_not_depend_on_order_but_on_token() {
        let a = vec!["http://b:1".to_string(), "http://a:1".to_string()];
        let b = vec!["http://a:1".to_string(), "http://b:1".to_string()];
        assert_eq!(member_id(&a, "t"), member_id(&b, "t"));
        assert_ne!(member_id(&a, "t"), member_id(&a, "u"));
        assert_eq!(cluster_id(&[1, 2, 3]), cluster_id(&[3, 1, 2]));
    }
}
