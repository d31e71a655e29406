use etcd_client::proto::PbResponseHeader;

use crate::member::App;

/// etcd's ResponseHeader for a response at store revision `revision`.
pub fn header(app: &App, revision: i64) -> Option<PbResponseHeader> {
    let s = app.status();
    Some(PbResponseHeader {
        cluster_id: s.cluster_id,
        member_id: s.member_id,
        revision,
        raft_term: s.term,
    })
}

/// The header at the store's current revision.
pub fn current(app: &App) -> Option<PbResponseHeader> {
    let rev = app.store().read().revision();
    header(app, rev)
}
