//! One watch as the API server's watch cache keeps it: require-leader, prev_kv, progress notify,
//! resumed after any error from the revision after the last one it knows complete, on the next member
//! in turn (clientv3's round-robin balancer). Every stream is recorded with its member and times, so a
//! fault injector can tell how long a cut-off member kept its watches. A watch canceled because its
//! revision was compacted re-lists its range and watches on from the list, as the reflector does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions, WatchResponse};
use tokio::sync::watch;

use super::tasks::{self, lock, Shared};
use super::WatchStream;
use crate::pki::Pki;

/// Where a watch's streams get their connection to a member: their own, or one shared by many
/// watches, as an API server's client multiplexes its watches over one connection.
#[derive(Clone)]
pub(super) enum Conn {
    Own,
    /// One lazily made connection per member (index into the endpoints).
    Shared(Arc<tokio::sync::Mutex<Vec<Option<Client>>>>),
}

impl Conn {
    /// A new shared set of connections to `members` members.
    pub(super) fn shared(members: usize) -> Conn {
        Conn::Shared(Arc::new(tokio::sync::Mutex::new(vec![None; members])))
    }

    /// A require-leader client of `endpoints[member]`.
    async fn to(&self, pki: &Pki, endpoints: &[String], member: usize) -> anyhow::Result<Client> {
        let endpoint = [endpoints[member].as_str()];
        let connect = || crate::grpc::connect_with(pki, &endpoint, true);
        match self {
            Conn::Own => connect().await,
            Conn::Shared(pool) => {
                let mut g = pool.lock().await;
                if let Some(Some(c)) = g.get(member) {
                    return Ok(c.clone());
                }
                let c = connect().await?;
                if let Some(slot) = g.get_mut(member) {
                    *slot = Some(c.clone());
                }
                Ok(c)
            }
        }
    }
}

/// Runs one watch until `stop`. `name` is the prefix, or `=key` for a single key; the first stream
/// opens on `endpoints[first_member]`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn watch_resource(
    pki: Pki,
    endpoints: Vec<String>,
    conn: Conn,
    first_member: usize,
    name: String,
    key: String,
    mut from: i64,
    page: i64,
    pause: Option<Duration>,
    rec: Shared,
    mut stop: watch::Receiver<bool>,
) {
    lock(&rec).watched.entry(name.clone()).or_default();
    let mut member = first_member;
    let mut first = true;
    let mut relist = false;
    while !*stop.borrow() {
        if !first {
            lock(&rec).watch_resumes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            member = (member + 1) % endpoints.len();
        }
        first = false;
        let end = |why: String| lock(&rec).watch_ends.push(format!("{name}: {why}"));
        let Ok(mut c) = conn.to(&pki, &endpoints, member).await else {
            end(format!("member {member} not reachable at {from}"));
            continue;
        };
        if relist {
            // The reflector's answer to "too old resource version": list the range again, paginated
            // at one revision, and watch on from that list's revision. A single key's watch lists
            // the prefix that is its key, which the list check covers the same way.
            let list = tasks::list(&mut c, &key, page).await;
            match list {
                Ok(l) => {
                    let mut g = lock(&rec);
                    g.relists += 1;
                    g.relisted
                        .entry(name.clone())
                        .or_default()
                        .push((from, l.revision));
                    from = l.revision + 1;
                    g.list_snapshots.push(l);
                    relist = false;
                }
                Err(e) => {
                    end(format!("re-list on member {member} failed: {e:#}"));
                    continue;
                }
            }
        }
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
        // With `pause`, the stream is dropped after this long (see Options::watch_pause).
        let paused = tokio::time::sleep(pause.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
        tokio::pin!(paused);
        loop {
            let msg = tokio::select! {
                m = s.message() => m,
                _ = stop.changed() => return,
                _ = &mut paused => {
                    end_stream(&rec, &name, stream, format!("paused on member {member} at {from}"));
                    if let Some(p) = pause {
                        tokio::time::sleep(p).await;
                    }
                    break;
                }
            };
            let why = match msg {
                Ok(Some(r)) if r.canceled() && r.compact_revision() > 0 => {
                    relist = true;
                    format!(
                        "canceled on member {member} at {from}: compacted to {}",
                        r.compact_revision()
                    )
                }
                Ok(Some(r)) if r.canceled() => {
                    lock(&rec).problems.push(format!(
                        "watch {name} canceled at {from}: {}",
                        r.cancel_reason()
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
            end_stream(&rec, &name, stream, why);
            break;
        }
    }
}

/// Notes why stream `stream` of watch `name` ended (it is resumed).
fn end_stream(rec: &Shared, name: &str, stream: Option<usize>, why: String) {
    let mut g = lock(rec);
    if let Some(i) = stream {
        g.streams[i].ended = Some((Instant::now(), why.clone()));
    }
    g.watch_ends.push(format!("{name}: {why}"));
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
