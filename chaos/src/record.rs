//! The shared recorder of one run: a clock, the operation log, finished watch sessions, and the
//! highest revisions seen (which stale reads, random watchers and the compactor draw from). Also the
//! one place that turns etcd-client calls into recorded operations.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, Error, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};

use crate::history::{Kv, Micros, Op, Outcome, Req, Resp, WatchSession};

/// How long a client waits for an answer before it counts the operation as unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// Number of recorder watchers (all keys from revision 1, resumed for the whole run).
pub const RECORDERS: usize = 2;

/// Everything the run's tasks write to.
pub struct Recorder {
    t0: Instant,
    next_id: AtomicU64,
    ops: Mutex<Vec<Op>>,
    sessions: Mutex<Vec<WatchSession>>,
    /// Highest header revision any answer carried.
    pub max_rev: AtomicI64,
    /// Per recorder watcher: the highest revision it has delivered (compaction stays below all).
    pub recorded: [AtomicI64; RECORDERS],
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            t0: Instant::now(),
            next_id: AtomicU64::new(0),
            ops: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            max_rev: AtomicI64::new(1),
            recorded: [AtomicI64::new(0), AtomicI64::new(0)],
        }
    }

    /// Microseconds since the run started.
    pub fn now(&self) -> Micros {
        self.t0.elapsed().as_micros() as Micros
    }

    /// The moment `m` microseconds after the run started.
    pub fn instant(&self, m: Micros) -> Instant {
        self.t0 + Duration::from_micros(m)
    }

    /// Sends `req` to `member` through `client`, records it, and returns the outcome.
    pub async fn run(
        &self,
        client_id: u32,
        member: usize,
        client: &mut Client,
        req: Req,
    ) -> Outcome {
        self.run_within(OP_TIMEOUT, client_id, member, client, req)
            .await
    }

    /// [`Recorder::run`] with another timeout.
    pub async fn run_within(
        &self,
        limit: Duration,
        client_id: u32,
        member: usize,
        client: &mut Client,
        req: Req,
    ) -> Outcome {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let invoke = self.now();
        let outcome = match tokio::time::timeout(limit, execute(client, &req)).await {
            Ok(Ok(resp)) => {
                self.max_rev.fetch_max(resp.rev(), Ordering::Relaxed);
                Outcome::Ok(resp)
            }
            Ok(Err(e)) => classify(&req, &e),
            Err(_) if req.is_write() => Outcome::Unknown(format!("no answer within {limit:?}")),
            Err(_) => Outcome::Fail(format!("no answer within {limit:?}")),
        };
        let op = Op {
            id,
            client: client_id,
            member,
            req,
            invoke,
            complete: self.now(),
            outcome: outcome.clone(),
        };
        lock(&self.ops).push(op);
        outcome
    }

    /// Adds a finished watch session.
    pub fn session(&self, s: WatchSession) {
        lock(&self.sessions).push(s);
    }

    /// The operations and sessions recorded so far, in invocation order.
    pub fn take(&self) -> (Vec<Op>, Vec<WatchSession>) {
        let mut ops = std::mem::take(&mut *lock(&self.ops));
        ops.sort_by_key(|o| (o.invoke, o.id));
        let mut sessions = std::mem::take(&mut *lock(&self.sessions));
        sessions.sort_by_key(|s| (s.watcher, s.invoke));
        (ops, sessions)
    }

    /// The lowest revision every recorder watcher has delivered.
    pub fn recorded_by_all(&self) -> i64 {
        self.recorded
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// A poisoned lock only means another task panicked, which aborts the run anyway: keep the data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether an error says the request did not apply. etcd answers these codes only for requests it
/// refused before or at apply without changing anything (invalid argument, compacted or future
/// revision, lease not found); everything else (unavailable, deadline, no leader, transport) leaves a
/// write maybe-applied.
fn classify(req: &Req, e: &Error) -> Outcome {
    let text = match e {
        Error::GRpcStatus(s) => format!("{:?}: {}", s.code(), s.message()),
        other => other.to_string(),
    };
    let definite = matches!(e, Error::GRpcStatus(s) if matches!(
        s.code(),
        tonic::Code::InvalidArgument | tonic::Code::NotFound | tonic::Code::OutOfRange
    ));
    if definite || !req.is_write() {
        Outcome::Fail(text)
    } else {
        Outcome::Unknown(text)
    }
}

/// A key-value as recorded.
pub fn kv(k: &KeyValue) -> Kv {
    Kv {
        value: String::from_utf8_lossy(k.value()).into_owned(),
        mod_rev: k.mod_revision(),
        create_rev: k.create_revision(),
        lease: k.lease(),
    }
}

async fn execute(c: &mut Client, req: &Req) -> Result<Resp, Error> {
    let rev = |h: Option<&etcd_client::ResponseHeader>| h.map_or(0, |h| h.revision());
    Ok(match req {
        Req::Get { key } => {
            let r = c.get(key.as_str(), None).await?;
            Resp::Read {
                rev: rev(r.header()),
                kv: r.kvs().first().map(kv),
            }
        }
        Req::GetAt { key, rev: at } => {
            let r = c
                .get(key.as_str(), Some(GetOptions::new().with_revision(*at)))
                .await?;
            Resp::Read {
                rev: rev(r.header()),
                kv: r.kvs().first().map(kv),
            }
        }
        Req::Put { key, value, lease } => {
            let opts = (*lease != 0).then(|| PutOptions::new().with_lease(*lease));
            let r = c.put(key.as_str(), value.as_str(), opts).await?;
            Resp::Done {
                rev: rev(r.header()),
            }
        }
        Req::Delete { key } => {
            let r = c.delete(key.as_str(), None).await?;
            Resp::Deleted {
                rev: rev(r.header()),
                deleted: r.deleted(),
            }
        }
        Req::CasRev {
            key,
            rev: at,
            value,
            ..
        } => {
            let cmp = Compare::mod_revision(key.as_str(), CompareOp::Equal, *at);
            txn(c, key, value, cmp).await?
        }
        Req::CasValue { key, expect, value } => {
            let cmp = Compare::value(key.as_str(), CompareOp::Equal, expect.as_str());
            txn(c, key, value, cmp).await?
        }
        Req::Grant { ttl } => {
            let r = c.lease_grant(*ttl, None).await?;
            Resp::Granted {
                rev: rev(r.header()),
                lease: r.id(),
            }
        }
        Req::Revoke { lease } => {
            let r = c.lease_revoke(*lease).await?;
            Resp::Done {
                rev: rev(r.header()),
            }
        }
        Req::Compact { rev: at } => {
            let r = c.compact(*at, None).await?;
            Resp::Done {
                rev: rev(r.header()),
            }
        }
    })
}

async fn txn(c: &mut Client, key: &str, value: &str, cmp: Compare) -> Result<Resp, Error> {
    let t = Txn::new()
        .when([cmp])
        .and_then([TxnOp::put(key, value, None)])
        .or_else([TxnOp::get(key, None)]);
    let r = c.txn(t).await?;
    let kv_else = r.op_responses().into_iter().find_map(|o| match o {
        TxnOpResponse::Get(g) => Some(g.kvs().first().map(kv)),
        _ => None,
    });
    Ok(Resp::Txn {
        rev: r.header().map_or(0, |h| h.revision()),
        succeeded: r.succeeded(),
        kv: kv_else.flatten(),
    })
}
