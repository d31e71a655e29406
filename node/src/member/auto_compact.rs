//! The auto-compaction loop (etcd's `--auto-compaction-mode` / `--auto-compaction-retention`): every
//! member samples its revision on the schedule of [`crate::mvcc::Periodic`] or
//! [`crate::mvcc::ByRevision`]; only the leader proposes the compaction, through Raft like a client's
//! `Compact`, so every member drops the same history and memory stops growing with it.

use std::sync::Weak;
use std::time::Instant;

use etcd_client::proto::PbCompactionRequest;
use prost::Message;

use crate::member::{App, Inner};
use crate::mvcc::Command;
use crate::mvcc::{ByRevision, MvccError, Periodic, Retention, REVISION_CHECK};

impl App {
    /// Start the loop for `retention` (nothing for [`Retention::Off`]); it ends with the member.
    pub(super) fn spawn_auto_compaction(&self, retention: Retention) {
        let me = std::sync::Arc::downgrade(&self.inner);
        match retention {
            Retention::Off => {}
            Retention::Period(p) => {
                tracing::info!(retention = ?p, "auto compaction: periodic");
                tokio::spawn(periodic(me, Periodic::new(p, Instant::now())));
            }
            Retention::Revisions(n) => {
                tracing::info!(retention = n, "auto compaction: revision");
                tokio::spawn(by_revision(me, ByRevision::new(n)));
            }
        }
    }

    fn current_revision(&self) -> i64 {
        self.store().read().revision()
    }

    /// Propose a compaction to `rev`; true when it took effect or `rev` was already compacted.
    async fn compact_to(&self, rev: i64, mode: &str) -> bool {
        let req = PbCompactionRequest {
            revision: rev,
            physical: false,
        };
        let started = Instant::now();
        match self.propose(Command::Compact(req.encode_to_vec())).await {
            Ok(r) if matches!(r.error, None | Some(MvccError::Compacted)) => {
                tracing::info!(revision = rev, took = ?started.elapsed(), "completed auto {mode} compaction");
                true
            }
            Ok(r) => {
                let e = r.error.map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(revision = rev, error = %e, "failed auto {mode} compaction");
                false
            }
            Err(e) => {
                tracing::warn!(revision = rev, error = %e, "failed auto {mode} compaction; will retry");
                false
            }
        }
    }
}

fn alive(me: &Weak<Inner>) -> Option<App> {
    me.upgrade().map(|inner| App { inner })
}

async fn periodic(me: Weak<Inner>, mut schedule: Periodic) {
    loop {
        let Some(app) = alive(&me) else { return };
        schedule.sample(app.current_revision());
        drop(app);
        tokio::time::sleep(schedule.tick()).await;
        let Some(app) = alive(&me) else { return };
        if !app.is_leader() {
            continue;
        }
        if let Some(rev) = schedule.due(Instant::now()) {
            if app.compact_to(rev, "periodic").await {
                schedule.succeeded(Instant::now());
            }
        }
    }
}

async fn by_revision(me: Weak<Inner>, mut schedule: ByRevision) {
    loop {
        tokio::time::sleep(REVISION_CHECK).await;
        let Some(app) = alive(&me) else { return };
        if !app.is_leader() {
            continue;
        }
        if let Some(rev) = schedule.due(app.current_revision()) {
            if app.compact_to(rev, "revision").await {
                schedule.succeeded(rev);
            }
        }
    }
}
