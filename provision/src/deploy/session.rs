//! The running cluster as one command sees it: the client API behind a small runtime, and the blocking,
//! deadline-bound operations the phases and the status/backup commands share (observe the membership,
//! wait for a member or the whole cluster, promote a learner, the members table).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::cluster::Api;
use super::plan::Observed;
use super::ui::Ui;
use crate::spec::Spec;

const POLL: Duration = Duration::from_millis(300);

/// An error as one short progress phrase (tonic's connect errors run to several hundred characters).
pub fn short(e: &anyhow::Error) -> String {
    let full = format!("{e:#}");
    for (needle, phrase) in [
        ("Connection refused", "connection refused"),
        ("No route to host", "no route to host"),
        ("timed out", "timed out"),
        ("tcp connect error", "cannot connect"),
        ("certificate", "TLS certificate refused"),
    ] {
        if full.contains(needle) {
            return phrase.into();
        }
    }
    full.chars().take(120).collect()
}

/// The client API and a runtime to drive it from the (synchronous) phases.
pub struct Session {
    rt: tokio::runtime::Runtime,
    api: Api,
    health_timeout: Duration,
}

impl Session {
    /// A session for `spec`, authenticating with the client certificates rendered into `out`.
    pub fn new(spec: &Spec, out: &Path) -> anyhow::Result<Session> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| anyhow!("starting the async runtime: {e}"))?;
        Ok(Session {
            rt,
            api: Api::new(spec, out),
            health_timeout: Duration::from_secs(u64::from(spec.apply.health_timeout_seconds)),
        })
    }

    /// Run one client-API call to completion.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The client API.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// How long to wait for a member or the cluster to become healthy (cluster.yaml's apply section).
    pub fn health_timeout(&self) -> Duration {
        self.health_timeout
    }

    /// The membership, read from whichever endpoint of `by_name` answers first.
    pub fn observe(&self, ui: &Ui, by_name: &BTreeMap<String, String>) -> Observed {
        let eps: Vec<String> = by_name.values().cloned().collect();
        match self.rt.block_on(self.api.members(&eps, by_name)) {
            Ok((members, leader)) => Observed {
                members: Some(members),
                leader,
            },
            Err(e) => {
                ui.log(&format!("no member answered: {e:#}"));
                Observed::default()
            }
        }
    }

    /// The leader's raft index right now (the mark a restarted or new member must reach).
    pub fn leader_index(&self, endpoints: &[String]) -> Option<u64> {
        self.rt.block_on(async {
            for ep in endpoints {
                if let Ok(s) = self.api.status(ep).await {
                    if s.leader != 0 && s.leader == s.id {
                        return Some(s.raft_index);
                    }
                }
            }
            None
        })
    }

    /// Wait until member `name` at `ep` has applied at least `index` and (unless it is a learner, which
    /// serves no linearizable reads) answers a linearizable read; prints progress.
    pub fn wait_member(
        &self,
        ui: &Ui,
        name: &str,
        ep: &str,
        index: u64,
        learner: bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.health_timeout;
        let mut shown = Instant::now();
        loop {
            let r = self.rt.block_on(async {
                let s = self.api.status(ep).await?;
                if s.applied < index {
                    return Err(anyhow!("applied index {} of {index}", s.applied));
                }
                if !learner {
                    self.api.healthy(ep).await?;
                }
                anyhow::Ok(())
            });
            let last = match r {
                Ok(()) => return Ok(()),
                Err(e) => short(&e),
            };
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "{name} not healthy after {:?}: {last}; see its log (journalctl -u cairn or the log file)",
                    self.health_timeout
                ));
            }
            if shown.elapsed() >= Duration::from_secs(3) {
                ui.host(name, &format!("waiting: {last}"));
                shown = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until every member of `members` (name, endpoint) is a healthy voter; prints `healthy k/n` as
    /// it changes.
    pub fn wait_all_healthy(&self, ui: &Ui, members: &[(String, String)]) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.health_timeout;
        let mut reported = usize::MAX;
        loop {
            let states: Vec<Result<(), String>> = self.rt.block_on(async {
                let mut v = Vec::new();
                for (_, ep) in members {
                    let r = async {
                        let s = self.api.status(ep).await?;
                        if s.is_learner {
                            anyhow::bail!("still a learner");
                        }
                        if s.leader == 0 {
                            anyhow::bail!("no leader");
                        }
                        self.api.healthy(ep).await
                    };
                    v.push(r.await.map_err(|e| short(&e)));
                }
                v
            });
            let ok = states.iter().filter(|s| s.is_ok()).count();
            if ok == members.len() {
                ui.info(&format!("healthy {ok}/{}", members.len()));
                return Ok(());
            }
            let waiting: Vec<String> = members
                .iter()
                .zip(&states)
                .filter_map(|((n, _), s)| s.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect();
            if ok != reported {
                ui.info(&format!(
                    "healthy {ok}/{} (waiting for {})",
                    members.len(),
                    waiting.join("; ")
                ));
                reported = ok;
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "cluster not healthy after {:?}: {}",
                    self.health_timeout,
                    waiting.join("; ")
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Promote learner `id` once it has caught up (the leader refuses before), retrying until the deadline.
    pub fn promote(
        &self,
        ui: &Ui,
        name: &str,
        endpoints: &[String],
        id: u64,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.health_timeout;
        loop {
            match self.rt.block_on(self.api.promote(endpoints, id)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(anyhow!("promoting {name} ({id:x}): {e:#}"))
                }
                Err(e) => ui.log(&format!("[{name}] promote not yet: {e:#}")),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// One row per member (name, endpoint): address, ID, version, leader, raft index, health.
    pub fn table(&self, members: &[(String, String)]) -> String {
        let mut rows = vec![[
            "MEMBER".to_string(),
            "ADDRESS".into(),
            "ID".into(),
            "VERSION".into(),
            "LEADER".into(),
            "RAFT INDEX".into(),
            "HEALTH".into(),
        ]];
        for (name, ep) in members {
            let (status, health) = self.rt.block_on(async {
                let s = self.api.status(ep).await;
                let ok = self.api.healthy(ep).await;
                (s, ok)
            });
            let row = match status {
                Ok(s) => [
                    name.clone(),
                    ep.clone(),
                    format!("{:x}", s.id),
                    s.version,
                    if s.leader == s.id {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    s.raft_index.to_string(),
                    match health {
                        Ok(()) => "healthy".into(),
                        Err(e) => format!("unhealthy: {e:#}"),
                    },
                ],
                Err(e) => [
                    name.clone(),
                    ep.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("unreachable: {e:#}"),
                ],
            };
            rows.push(row);
        }
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        rows.iter()
            .map(|r| {
                r.iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
