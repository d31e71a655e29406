//! Transactions: compares evaluated against the state before the txn (nested ones too, as etcd does),
//! then the chosen branch checked and executed as one revision.

use etcd_client::proto::{
    PbCompare, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest,
    PbTxnResponse,
};

use super::{KeyRange, MvccError, State, Version, Write, LATEST};

impl State {
    /// The branch taken by `txn` and, depth first, by every nested txn on that path.
    fn path(&self, txn: &PbTxnRequest, out: &mut Vec<bool>) {
        let ok = txn.compare.iter().all(|c| self.compare(c));
        out.push(ok);
        for op in branch(txn, ok) {
            if let Some(PbTxnOpRequest::RequestTxn(t)) = &op.request {
                self.path(t, out);
            }
        }
    }

    fn compare(&self, c: &PbCompare) -> bool {
        let range = KeyRange::new(&c.key, &c.range_end);
        let mut found = false;
        for (_, v) in self.keys.range_at(range, LATEST) {
            found = true;
            let value = matches!(c.target_union, Some(PbTargetUnion::Value(_)))
                .then(|| self.keys.value_in_apply(v));
            if !compare_one(c, Some((v, value.as_deref()))) {
                return false;
            }
        }
        // A missing key compares as zero everywhere, except that a value compare always fails (there
        // is no way to tell a missing value from an empty one on the wire).
        found || (c.target != 3 && compare_one(c, None))
    }
}

/// Compare one version (with its value when the compare targets the value) or a missing key.
fn compare_one(c: &PbCompare, v: Option<(&Version, Option<&[u8]>)>) -> bool {
    use std::cmp::Ordering;
    let (value, v) = (v.and_then(|(_, b)| b), v.map(|(v, _)| v));
    let ord = match (&c.target_union, v) {
        (Some(PbTargetUnion::Version(x)), v) => v.map_or(0, |v| v.version).cmp(x),
        (Some(PbTargetUnion::CreateRevision(x)), v) => v.map_or(0, |v| v.create).cmp(x),
        (Some(PbTargetUnion::ModRevision(x)), v) => v.map_or(0, |v| v.rev.main).cmp(x),
        (Some(PbTargetUnion::Value(x)), Some(_)) => value.unwrap_or_default().cmp(x.as_slice()),
        (Some(PbTargetUnion::Lease(x)), v) => v.map_or(0, |v| v.lease).cmp(x),
        _ => return false,
    };
    match c.result {
        0 => ord == Ordering::Equal,
        1 => ord == Ordering::Greater,
        2 => ord == Ordering::Less,
        3 => ord != Ordering::Equal,
        _ => false,
    }
}

fn stamp(resp: &mut PbTxnResponse, revision: i64) {
    let header = || {
        Some(etcd_client::proto::PbResponseHeader {
            revision,
            ..Default::default()
        })
    };
    for op in &mut resp.responses {
        match &mut op.response {
            Some(PbTxnOpResponse::ResponseRange(r)) => r.header = header(),
            Some(PbTxnOpResponse::ResponsePut(r)) => r.header = header(),
            Some(PbTxnOpResponse::ResponseDeleteRange(r)) => r.header = header(),
            Some(PbTxnOpResponse::ResponseTxn(t)) => {
                t.header = header();
                stamp(t, revision);
            }
            None => {}
        }
    }
}

fn branch(txn: &PbTxnRequest, ok: bool) -> &[etcd_client::proto::PbTxnRequestOp] {
    if ok {
        &txn.success
    } else {
        &txn.failure
    }
}

impl Write<'_> {
    pub(super) fn txn(&mut self, txn: &PbTxnRequest) -> Result<PbTxnResponse, MvccError> {
        let mut path = Vec::new();
        self.st.path(txn, &mut path);
        self.check(txn, &path, &mut 0)?;
        let mut resp = self.exec(txn, &path, &mut 0);
        // etcd gives each inner response a header holding just the revision the txn leaves behind.
        let rev = if self.sub > 0 {
            self.rev
        } else {
            self.st.revision
        };
        stamp(&mut resp, rev);
        Ok(resp)
    }

    /// Reject the whole txn before writing anything if a put on its path would fail.
    fn check(&self, txn: &PbTxnRequest, path: &[bool], at: &mut usize) -> Result<(), MvccError> {
        let ok = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        for op in branch(txn, ok) {
            match &op.request {
                Some(PbTxnOpRequest::RequestPut(p)) => self.check_put(p)?,
                Some(PbTxnOpRequest::RequestRange(r)) if r.revision > 0 => {
                    self.st.check_read_rev(r.revision)?;
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => self.check(t, path, at)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn exec(&mut self, txn: &PbTxnRequest, path: &[bool], at: &mut usize) -> PbTxnResponse {
        let ok = path.get(*at).copied().unwrap_or(false);
        *at += 1;
        let mut responses = Vec::new();
        for op in branch(txn, ok) {
            let response = match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    // Checked above, so the read cannot fail.
                    let r = self.st.range(r, LATEST).unwrap_or_default();
                    Some(PbTxnOpResponse::ResponseRange(r))
                }
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    self.put(p).ok().map(PbTxnOpResponse::ResponsePut)
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    Some(PbTxnOpResponse::ResponseDeleteRange(self.delete_range(d)))
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => {
                    Some(PbTxnOpResponse::ResponseTxn(self.exec(t, path, at)))
                }
                None => None,
            };
            responses.push(PbResponseOp { response });
        }
        PbTxnResponse {
            header: None,
            succeeded: ok,
            responses,
        }
    }
}
