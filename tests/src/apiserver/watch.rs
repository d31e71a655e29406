//! One watch as the API server's watch cache keeps it: require-leader, prev_kv, progress notify,
//! resumed after any error from the revision after the last one it knows complete, on the next member
//! in turn (clientv3's round-robin balancer). Every stream is recorded with its member and times, so a
//! fault injector can tell how long a cut-off member kept its watches.

use std::time::{Duration, Instant};

use etcd_client::{WatchOptions, WatchResponse};
use tokio::sync::watch;

use super::tasks::{lock, Shared};
use super::WatchStream;
use crate::pki::Pki;

/// Runs one watch until `stop`. `name` is the prefix, or `=key` for a single key; the first stream
/// opens on `endpoints[first_member]`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn watch_resource(
    pki: Pki,
    endpoints: Vec<String>,
    first_member: usize,
    name: String,
    key: String,
    mut from: i64,
    rec: Shared,
    mut stop: watch::Receiver<bool>,
) {
    lock(&rec).watched.entry(name.clone()).or_default();
    let mut member = first_member;
    let mut first = true;
    while !*stop.borrow() {
        if !first {
            lock(&rec).watch_resumes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            member = (member + 1) % endpoints.len();
        }
        first = false;
        let end = |why: String| lock(&rec).watch_ends.push(format!("{name}: {why}"));
        let Ok(mut c) = crate::grpc::connect_with(&pki, &[&endpoints[member]], true).await else {
            end(format!("member {member} not reachable at {from}"));
            continue;
        };
        let mut opts = WatchOptions::new()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(from);
        if !name.starts_with('=') {
            opts = opts.with_prefix();
        }
        let mut s = match c.watch(key.as_str(), Some(opts)).await {
            Ok(s) => s,
            Err(e) => {
                end(format!("not opened on member {member} at {from}: {e}"));
                continue;
            }
        };
        let mut stream = None;
        loop {
            let msg = tokio::select! {
                m = s.message() => m,
                _ = stop.changed() => return,
            };
            let why = match msg {
                Ok(Some(r)) if r.canceled() => {
                    lock(&rec).problems.push(format!(
                        "watch {name} canceled at {from}: {} (compact revision {})",
                        r.cancel_reason(),
                        r.compact_revision()
                    ));
                    return;
                }
                Ok(Some(r)) => {
                    deliver(&rec, &name, member, &mut from, &mut stream, &r);
                    continue;
                }
                Ok(None) => format!("ended on member {member} at {from}"),
                Err(e) => format!("failed on member {member} at {from}: {e}"),
            };
            let mut g = lock(&rec);
            if let Some(i) = stream {
                g.streams[i].ended = Some((Instant::now(), why.clone()));
            }
            g.watch_ends.push(format!("{name}: {why}"));
            break;
        }
    }
}

/// Records one response: the stream on its `created` response, events in order, and the revision
/// the watch is complete up to (an event's, or a progress notification's).
fn deliver(
    rec: &Shared,
    name: &str,
    member: usize,
    from: &mut i64,
    stream: &mut Option<usize>,
    r: &WatchResponse,
) {
    let mut g = lock(rec);
    if r.created() {
        g.streams.push(WatchStream {
            name: name.to_string(),
            member,
            opened: Instant::now(),
            from: *from,
            ended: None,
        });
        *stream = Some(g.streams.len() - 1);
    } else if r.events().is_empty() {
        // A progress notification: every event up to its revision has been sent, so a resumed
        // watch may start after it, as the API server's watch cache does (without this a quiet key's
        // watch would resume from before the last compaction and be canceled).
        g.progress_notifications += 1;
        if let Some(h) = r.header() {
            *from = (*from).max(h.revision() + 1);
        }
    }
    let seen = g.watched.entry(name.to_string()).or_default();
    for e in r.events() {
        let Some(kv) = e.kv() else { continue };
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        seen.push((
            key,
            kv.mod_revision(),
            e.event_type() == etcd_client::EventType::Put,
        ));
        *from = kv.mod_revision() + 1;
    }
}
