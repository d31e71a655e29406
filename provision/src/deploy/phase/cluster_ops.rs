//! Waiting on the cluster with deadlines and progress: a member healthy and caught up, every member of
//! cluster.yaml healthy, a learner promoted.

use std::time::{Duration, Instant};

use anyhow::anyhow;

use crate::deploy::ctx::RunCtx;

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

impl RunCtx {
    /// The health deadline of cluster.yaml.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.spec.apply.health_timeout_seconds))
    }

    /// The leader's raft index right now (the mark a restarted or new member must reach).
    pub fn leader_index(&self) -> Option<u64> {
        let eps = self.endpoints_by_name();
        self.rt.block_on(async {
            for ep in eps.values() {
                if let Ok(s) = self.api.status(ep).await {
                    if s.leader != 0 && s.leader == s.id {
                        return Some(s.raft_index);
                    }
                }
            }
            None
        })
    }

    /// Wait until `name` has applied at least `index` and (unless it is a learner, which serves no
    /// linearizable reads) answers a linearizable read; prints progress.
    pub fn wait_member(&self, name: &str, index: u64, learner: bool) -> anyhow::Result<()> {
        let ep = self.host(name)?.target.client_endpoint.clone();
        let deadline = Instant::now() + self.health_timeout();
        let mut shown = Instant::now();
        loop {
            let r = self.rt.block_on(async {
                let s = self.api.status(&ep).await?;
                if s.applied < index {
                    return Err(anyhow!("applied index {} of {index}", s.applied));
                }
                if !learner {
                    self.api.healthy(&ep).await?;
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
                    self.health_timeout()
                ));
            }
            if shown.elapsed() >= Duration::from_secs(3) {
                self.ui.host(name, &format!("waiting: {last}"));
                shown = Instant::now();
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until every member of cluster.yaml is a healthy voter; prints `healthy k/n` as it changes.
    pub fn wait_all_healthy(&self) -> anyhow::Result<Duration> {
        let eps: Vec<(String, String)> = self
            .members()
            .map(|h| (h.name().to_string(), h.target.client_endpoint.clone()))
            .collect();
        let deadline = Instant::now() + self.health_timeout();
        let mut reported = usize::MAX;
        loop {
            let states: Vec<Result<(), String>> = self.rt.block_on(async {
                let mut v = Vec::new();
                for (_, ep) in &eps {
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
            if ok == eps.len() {
                self.ui.info(&format!("healthy {ok}/{}", eps.len()));
                return Ok(self.started.elapsed());
            }
            let waiting: Vec<String> = eps
                .iter()
                .zip(&states)
                .filter_map(|((n, _), s)| s.as_ref().err().map(|e| format!("{n}: {e}")))
                .collect();
            if ok != reported {
                self.ui.info(&format!(
                    "healthy {ok}/{} (waiting for {})",
                    eps.len(),
                    waiting.join("; ")
                ));
                reported = ok;
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "cluster not healthy after {:?}: {}",
                    self.health_timeout(),
                    waiting.join("; ")
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until the started members answer status (a quorum of them elects a leader).
    pub fn wait_all_started(&self, names: &[String]) -> anyhow::Result<()> {
        for n in names {
            self.wait_member(n, 0, true)?;
        }
        Ok(())
    }

    /// Promote learner `id` once it has caught up (the leader refuses before), retrying until the deadline.
    pub fn promote(&self, name: &str, id: u64) -> anyhow::Result<()> {
        let eps = self.endpoints();
        let deadline = Instant::now() + self.health_timeout();
        loop {
            match self.rt.block_on(self.api.promote(&eps, id)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(anyhow!("promoting {name} ({id:x}): {e:#}"))
                }
                Err(e) => self.ui.log(&format!("[{name}] promote not yet: {e:#}")),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
