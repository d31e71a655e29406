//! The clients: each sends one operation at a time to a random member over ten keys, with values
//! unique in the run: reads, puts, deletes, compare-and-set on mod revision and on value, reads at an
//! old revision, lease puts and revokes. A compactor compacts now and then, never past what every
//! recorder watcher has delivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::Client;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::history::{Outcome, Req, Resp, HARNESS_CLIENT};
use crate::record::Recorder;

/// The keys every client works on.
pub const KEYS: usize = 10;

/// Key number `i`.
pub fn key(i: usize) -> String {
    format!("k{i}")
}

/// Lease TTL: longer than any run, so keys only go away by revoke.
const LEASE_TTL: i64 = 900;

/// One client's own view, used to make compare-and-sets that can succeed.
struct ClientState {
    id: u32,
    seq: u64,
    /// Last seen per key: value (None: absent) and mod revision.
    seen: HashMap<String, (Option<String>, i64)>,
    lease: Option<i64>,
    rng: ChaCha8Rng,
}

impl ClientState {
    fn value(&mut self) -> String {
        self.seq += 1;
        format!("c{}-{}", self.id, self.seq)
    }

    fn next_request(&mut self, max_rev: i64) -> Req {
        let k = key(self.rng.random_range(0..KEYS));
        let seen = self.seen.get(&k).cloned();
        match self.rng.random_range(0..100) {
            0..25 => Req::Get { key: k },
            25..45 => Req::Put {
                key: k,
                value: self.value(),
                lease: 0,
            },
            45..50 => Req::Delete { key: k },
            50..60 => match seen {
                Some((seen, rev)) => Req::CasRev {
                    key: k,
                    rev,
                    seen,
                    value: self.value(),
                },
                None => Req::Get { key: k },
            },
            60..70 => match seen {
                Some((Some(expect), _)) => Req::CasValue {
                    key: k,
                    expect,
                    value: self.value(),
                },
                _ => Req::Get { key: k },
            },
            70..80 => {
                let lo = (max_rev - 200).max(1);
                Req::GetAt {
                    key: k,
                    rev: self.rng.random_range(lo..=max_rev.max(lo)),
                }
            }
            80..92 => match self.lease {
                Some(lease) => Req::Put {
                    key: k,
                    value: self.value(),
                    lease,
                },
                None => Req::Grant { ttl: LEASE_TTL },
            },
            _ => match self.lease {
                Some(lease) => Req::Revoke { lease },
                None => Req::Grant { ttl: LEASE_TTL },
            },
        }
    }

    fn learn(&mut self, req: &Req, out: &Outcome) {
        let key = req.key().map(str::to_string);
        match (req, out) {
            (Req::Get { .. }, Outcome::Ok(Resp::Read { kv, .. }))
            | (
                Req::CasRev { .. } | Req::CasValue { .. },
                Outcome::Ok(Resp::Txn {
                    succeeded: false,
                    kv,
                    ..
                }),
            ) => {
                if let Some(k) = key {
                    let s = kv
                        .as_ref()
                        .map_or((None, 0), |kv| (Some(kv.value.clone()), kv.mod_rev));
                    self.seen.insert(k, s);
                }
            }
            (Req::Grant { .. }, Outcome::Ok(Resp::Granted { lease, .. })) => {
                self.lease = Some(*lease)
            }
            // Whatever a revoke answered, stop using the lease (a revoked one fails every put).
            (Req::Revoke { .. }, _) => self.lease = None,
            (Req::Put { lease, .. }, Outcome::Fail(_)) if *lease != 0 => self.lease = None,
            _ => {}
        }
    }
}

/// Runs client `id` until `stop`, against `clients` (one per member).
pub async fn client(
    id: u32,
    seed: u64,
    mut clients: Vec<Client>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut st = ClientState {
        id,
        seq: 0,
        seen: HashMap::new(),
        lease: None,
        rng: ChaCha8Rng::seed_from_u64(seed ^ (u64::from(id) << 32)),
    };
    while !stop.load(Ordering::Relaxed) {
        let member = st.rng.random_range(0..clients.len());
        let req = st.next_request(rec.max_rev.load(Ordering::Relaxed));
        let out = rec.run(id, member, &mut clients[member], req.clone()).await;
        st.learn(&req, &out);
        // A little room for the other engineers' builds on this 2-core machine; after an error a bit
        // more, so a dead member is not hammered.
        let pause = if matches!(out, Outcome::Ok(_)) {
            5..15
        } else {
            50..150
        };
        tokio::time::sleep(Duration::from_millis(st.rng.random_range(pause))).await;
    }
}

/// Key of the availability prober.
pub const PROBE_KEY: &str = "probe";

/// Puts to [`PROBE_KEY`] every 100 ms through a random member, each given one second: the fine-grained
/// measure of how long writes were unavailable after a fault.
pub async fn prober(
    seed: u64,
    mut clients: Vec<Client>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9b0be);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let member = rng.random_range(0..clients.len());
        let req = Req::Put {
            key: PROBE_KEY.into(),
            value: format!("p-{n}"),
            lease: 0,
        };
        rec.run_within(
            Duration::from_secs(1),
            PROBER_CLIENT,
            member,
            &mut clients[member],
            req,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Client ID of the prober.
pub const PROBER_CLIENT: u32 = 900;

/// Compacts every few seconds to a revision a little below what every recorder watcher has delivered.
pub async fn compactor(
    seed: u64,
    mut clients: Vec<Client>,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0);
    let mut done = 1;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(3000..6000))).await;
        let target = rec.recorded_by_all() - 50;
        if target > done {
            let member = rng.random_range(0..clients.len());
            let out = rec
                .run(
                    HARNESS_CLIENT,
                    member,
                    &mut clients[member],
                    Req::Compact { rev: target },
                )
                .await;
            if matches!(out, Outcome::Ok(_)) {
                done = target;
            }
        }
    }
}
