//! The write operations of one command (put, delete, lease grant and revoke): each write takes the
//! command's main revision with the next sub-revision and, when anyone watches, records its event.

use etcd_client::proto::{
    PbDeleteRequest, PbDeleteResponse, PbEvent, PbLeaseGrantResponse, PbLeaseRevokeResponse,
    PbPutRequest, PbPutResponse,
};

use super::keyspace::{Rev, Version};
use super::lease::Lease;
use super::{KeyRange, MvccError, Write, LATEST};

impl Write<'_> {
    pub(super) fn next_rev(&mut self) -> Rev {
        let r = Rev {
            main: self.rev,
            sub: self.sub,
        };
        self.sub += 1;
        r
    }

    /// Errors a put would hit, checked before anything is written.
    pub(super) fn check_put(&self, req: &PbPutRequest) -> Result<(), MvccError> {
        let prev = self.st.keys.get_at(&req.key, LATEST);
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let lease = match (req.ignore_lease, prev) {
            (true, Some(p)) => p.lease,
            _ => req.lease,
        };
        if lease != 0 && !self.st.leases.contains_key(&lease) {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(())
    }

    pub(super) fn put(&mut self, req: &PbPutRequest) -> Result<PbPutResponse, MvccError> {
        self.check_put(req)?;
        // Take what the new version inherits from the live one, copying its value only when it is
        // kept (ignore_value) or reported (prev_kv, watchers).
        let prev = self.st.keys.get_at(&req.key, LATEST);
        let report_prev = req.prev_kv || self.emit;
        let prev_kv = prev
            .filter(|_| report_prev)
            .map(|p| self.st.keys.kv_in_apply(&req.key, p));
        let inherited = prev.map(|p| (p.create, p.version, p.lease));
        // An ignore_value put points at the live version's bytes instead of copying them.
        let kept = prev.filter(|_| req.ignore_value).map(|p| p.value);
        let lease = match (inherited, req.ignore_lease) {
            (Some((_, _, l)), true) => l,
            _ => req.lease,
        };
        if let Some((_, _, old)) = inherited.filter(|(_, _, l)| *l != 0 && *l != lease) {
            self.st.detach(old, &req.key);
        }
        if lease != 0 {
            if let Some(l) = self.st.leases.get_mut(&lease) {
                if !l.keys.contains(&req.key) {
                    l.keys.insert(req.key.clone());
                }
            }
        }
        let rev = self.next_rev();
        let value = match kept {
            Some(r) => r,
            None => self.st.keys.store_value(&req.value),
        };
        let v = Version {
            rev,
            create: inherited.map_or(rev.main, |(c, _, _)| c),
            version: inherited.map_or(1, |(_, n, _)| n + 1),
            lease,
            value,
            tombstone: false,
        };
        let (event_prev, reply_prev) = split(prev_kv, self.emit, req.prev_kv);
        if self.emit {
            let bytes = match kept {
                Some(_) => self.st.keys.value_in_apply(&v),
                None => req.value.clone(),
            };
            self.events.push(PbEvent {
                r#type: 0,
                kv: Some(v.kv_with(&req.key, bytes)),
                prev_kv: event_prev,
            });
        }
        self.st.keys.push(&req.key, v);
        Ok(PbPutResponse {
            header: None,
            prev_kv: reply_prev,
        })
    }

    pub(super) fn delete_range(&mut self, req: &PbDeleteRequest) -> PbDeleteResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let report_prev = req.prev_kv || self.emit;
        // Key, lease and (when reported) the previous key-value of every live key in the range.
        let keys = &self.st.keys;
        let doomed: Vec<(Vec<u8>, i64, Option<etcd_client::proto::PbKeyValue>)> = keys
            .range_at(range, LATEST)
            .map(|(k, v)| {
                let prev = report_prev.then(|| keys.kv_in_apply(k, v));
                (k.to_vec(), v.lease, prev)
            })
            .collect();
        let deleted = doomed.len() as i64;
        let mut prev_kvs = Vec::new();
        for (k, lease, prev_kv) in doomed {
            if lease != 0 {
                self.st.detach(lease, &k);
            }
            let rev = self.next_rev();
            let (event_prev, reply_prev) = split(prev_kv, self.emit, req.prev_kv);
            if self.emit {
                self.events.push(PbEvent {
                    r#type: 1,
                    kv: Some(etcd_client::proto::PbKeyValue {
                        key: k.clone(),
                        mod_revision: rev.main,
                        ..Default::default()
                    }),
                    prev_kv: event_prev,
                });
            }
            self.st.keys.push(
                &k,
                Version {
                    rev,
                    create: 0,
                    version: 0,
                    lease: 0,
                    value: Default::default(),
                    tombstone: true,
                },
            );
            prev_kvs.extend(reply_prev);
        }
        PbDeleteResponse {
            header: None,
            deleted,
            prev_kvs,
        }
    }

    pub(super) fn lease_grant(
        &mut self,
        id: i64,
        ttl: i64,
    ) -> Result<PbLeaseGrantResponse, MvccError> {
        if self.st.leases.contains_key(&id) {
            return Err(MvccError::LeaseExists);
        }
        self.st.leases.insert(id, Lease::new(ttl));
        Ok(PbLeaseGrantResponse {
            header: None,
            id,
            ttl,
            error: String::new(),
        })
    }

    pub(super) fn lease_revoke(&mut self, id: i64) -> Result<PbLeaseRevokeResponse, MvccError> {
        let lease = self.st.leases.remove(&id).ok_or(MvccError::LeaseNotFound)?;
        for key in lease.keys {
            self.delete_range(&PbDeleteRequest {
                key,
                ..Default::default()
            });
        }
        Ok(PbLeaseRevokeResponse::default())
    }
}

/// The previous key-value for the watch event and for the reply, copied only when both want it.
fn split<T: Clone>(prev: Option<T>, event: bool, reply: bool) -> (Option<T>, Option<T>) {
    match (event, reply) {
        (true, true) => (prev.clone(), prev),
        (true, false) => (prev, None),
        (false, true) => (None, prev),
        (false, false) => (None, None),
    }
}
