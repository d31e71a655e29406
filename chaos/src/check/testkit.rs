//! Hand-written histories for the checkers' tests: times in microseconds, one call per operation.

use crate::history::{
    Final, History, Kv, MemberFinal, Op, Outcome, Req, Resp, WatchEnd, WatchEvent, WatchRange,
    WatchSession,
};

/// A value with its mod revision (create revision the same, no lease).
pub fn kv(value: &str, mod_rev: i64) -> Option<Kv> {
    Some(kv_at(value, mod_rev))
}

fn kv_at(value: &str, mod_rev: i64) -> Kv {
    Kv {
        value: value.into(),
        mod_rev,
        create_rev: mod_rev,
        lease: 0,
    }
}

/// A member's final data: (key, value, mod revision).
pub type Data<'a> = &'a [(&'a str, &'a str, i64)];

/// A history under construction.
pub struct H {
    pub h: History,
}

impl H {
    pub fn new() -> H {
        H {
            h: History::new("test", 0),
        }
    }

    pub fn op(&mut self, client: u32, req: Req, t: (u64, u64), outcome: Outcome) -> &mut H {
        let id = self.h.ops.len() as u64;
        self.h.ops.push(Op {
            id,
            client,
            member: 0,
            req,
            invoke: t.0,
            complete: t.1,
            outcome,
        });
        self
    }

    pub fn put(&mut self, c: u32, key: &str, value: &str, t: (u64, u64), rev: i64) -> &mut H {
        self.put_lease(c, key, value, 0, t, rev)
    }

    pub fn put_lease(
        &mut self,
        c: u32,
        key: &str,
        value: &str,
        lease: i64,
        t: (u64, u64),
        rev: i64,
    ) -> &mut H {
        let req = Req::Put {
            key: key.into(),
            value: value.into(),
            lease,
        };
        self.op(c, req, t, Outcome::Ok(Resp::Done { rev }))
    }

    /// A put that timed out: maybe applied.
    pub fn put_unknown(&mut self, c: u32, key: &str, value: &str, t: (u64, u64)) -> &mut H {
        let req = Req::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        };
        self.op(c, req, t, Outcome::Unknown("deadline exceeded".into()))
    }

    pub fn get(&mut self, c: u32, key: &str, t: (u64, u64), rev: i64, got: Option<Kv>) -> &mut H {
        let req = Req::Get { key: key.into() };
        self.op(c, req, t, Outcome::Ok(Resp::Read { rev, kv: got }))
    }

    pub fn get_at(
        &mut self,
        c: u32,
        key: &str,
        at: i64,
        t: (u64, u64),
        rev: i64,
        got: Option<Kv>,
    ) -> &mut H {
        let req = Req::GetAt {
            key: key.into(),
            rev: at,
        };
        self.op(c, req, t, Outcome::Ok(Resp::Read { rev, kv: got }))
    }

    pub fn del(&mut self, c: u32, key: &str, t: (u64, u64), rev: i64, deleted: i64) -> &mut H {
        let req = Req::Delete { key: key.into() };
        self.op(c, req, t, Outcome::Ok(Resp::Deleted { rev, deleted }))
    }

    pub fn del_unknown(&mut self, c: u32, key: &str, t: (u64, u64)) -> &mut H {
        let req = Req::Delete { key: key.into() };
        self.op(c, req, t, Outcome::Unknown("connection reset".into()))
    }

    /// If value == `expect` then put `value`.
    pub fn cas(
        &mut self,
        c: u32,
        key: &str,
        expect: &str,
        value: &str,
        t: (u64, u64),
        resp: Resp,
    ) -> &mut H {
        let req = Req::CasValue {
            key: key.into(),
            expect: expect.into(),
            value: value.into(),
        };
        self.op(c, req, t, Outcome::Ok(resp))
    }

    pub fn revoke(&mut self, c: u32, lease: i64, t: (u64, u64), rev: i64) -> &mut H {
        self.op(c, Req::Revoke { lease }, t, Outcome::Ok(Resp::Done { rev }))
    }

    pub fn compact(&mut self, rev: i64, t: (u64, u64)) -> &mut H {
        self.op(99, Req::Compact { rev }, t, Outcome::Ok(Resp::Done { rev }))
    }

    /// A watch session of all keys from `start` that received `events` (rev, key, value or delete),
    /// one response per revision.
    pub fn watch(
        &mut self,
        watcher: u32,
        start: i64,
        events: &[(i64, &str, Option<&str>)],
    ) -> &mut H {
        self.watch_session(
            watcher,
            WatchRange::All,
            start,
            events,
            0,
            WatchEnd::Stopped,
        )
    }

    pub fn watch_session(
        &mut self,
        watcher: u32,
        range: WatchRange,
        start: i64,
        events: &[(i64, &str, Option<&str>)],
        invoke: u64,
        end: WatchEnd,
    ) -> &mut H {
        let events = events
            .iter()
            .map(|&(rev, key, value)| WatchEvent {
                at: invoke + 1,
                rev,
                key: key.into(),
                kv: value.and_then(|v| kv(v, rev)),
                batch: rev as u32,
            })
            .collect();
        self.h.watches.push(WatchSession {
            watcher,
            recorder: range == WatchRange::All,
            member: 0,
            range,
            start_rev: start,
            resumed: false,
            invoke,
            created: Some(invoke),
            events,
            end,
            end_at: invoke + 1_000_000,
        });
        self
    }

    /// Every member converged at `revision` with these hashes and data.
    pub fn converged(&mut self, revision: i64, members: &[(u32, Data)]) -> &mut H {
        let members = members
            .iter()
            .enumerate()
            .map(|(i, (hash, kvs))| MemberFinal {
                name: format!("m{i}"),
                revision,
                raft_index: 0,
                hash: Some(*hash),
                hash_compact_rev: 0,
                kvs: kvs
                    .iter()
                    .map(|&(k, v, r)| (k.to_string(), kv_at(v, r)))
                    .collect(),
            })
            .collect();
        self.h.final_state = Some(Final {
            revision,
            members,
            not_converged: Vec::new(),
        });
        self
    }
}
