//! Watch fragments (`WatchCreateRequest.fragment`), as etcd's `sendFragments` in v3rpc/watch.go: a
//! response of at least the limit (`--max-request-bytes` plus etcd's 512 KiB of gRPC overhead, as
//! etcd's watch server computes it) with two or more events goes out as several responses,
//! each below the limit (or holding one event), `fragment: true` on all but the last.

use etcd_client::proto::{PbEvent, PbWatchResponse};
use prost::Message;

/// Field number of `WatchResponse.events` (etcd's rpc.proto).
const EVENTS_FIELD: u32 = 11;

/// The responses `resp` goes out as for a watcher that asked for fragments, under `limit` bytes.
pub fn split(resp: PbWatchResponse, limit: usize) -> Vec<PbWatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < limit {
        return vec![resp];
    }
    let mut shell = resp;
    let events = std::mem::take(&mut shell.events);
    shell.fragment = true;
    let base = shell.encoded_len();
    let mut out = Vec::new();
    let mut cur: Vec<PbEvent> = Vec::new();
    let mut size = base;
    for ev in events {
        let len = prost::encoding::message::encoded_len(EVENTS_FIELD, &ev);
        // etcd adds the event, then takes it back if the fragment reached the limit with it.
        if !cur.is_empty() && size + len >= limit {
            out.push(PbWatchResponse {
                events: std::mem::take(&mut cur),
                ..shell.clone()
            });
            size = base;
        }
        size += len;
        cur.push(ev);
    }
    out.push(PbWatchResponse {
        events: cur,
        fragment: false,
        ..shell
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::proto::PbKeyValue;

    fn event(i: usize, value_len: usize) -> PbEvent {
        PbEvent {
            kv: Some(PbKeyValue {
                key: format!("k{i:04}").into_bytes(),
                value: vec![b'x'; value_len],
                mod_revision: i as i64 + 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn response(n: usize, value_len: usize) -> PbWatchResponse {
        PbWatchResponse {
            watch_id: 7,
            events: (0..n).map(|i| event(i, value_len)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_response_under_the_limit_or_with_one_event_is_sent_whole() {
        assert_eq!(split(response(3, 10), 10_000).len(), 1);
        let one = split(response(1, 50_000), 1_000);
        assert_eq!(one.len(), 1);
        assert!(!one[0].fragment);
    }

    #[test]
    fn fragments_stay_under_the_limit_flag_all_but_the_last_and_reassemble() {
        let whole = response(100, 1_000);
        let parts = split(whole.clone(), 10_000);
        assert!(parts.len() >= 10, "{} fragments", parts.len());
        for p in &parts[..parts.len() - 1] {
            assert!(p.fragment);
            assert!(p.encoded_len() < 10_000, "{}", p.encoded_len());
            assert_eq!(p.watch_id, 7);
        }
        assert!(!parts[parts.len() - 1].fragment);
        let events: Vec<PbEvent> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, whole.events);
    }

    #[test]
    fn an_event_larger_than_the_limit_gets_a_fragment_of_its_own() {
        let mut whole = response(3, 10);
        whole.events[1] = event(1, 5_000);
        let parts = split(whole, 1_000);
        let sizes: Vec<usize> = parts.iter().map(|p| p.events.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
    }
}
