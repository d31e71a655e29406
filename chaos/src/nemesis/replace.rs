//! Membership change under load: a member removed through the others, wiped, added back as a new
//! member and started with `--initial-cluster-state existing`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::Client;
use tokio::time::{sleep, Instant};

use super::Nemesis;
use crate::disk;

impl Nemesis<'_> {
    /// Removes member `i` from the cluster, wipes its data and adds it back as a new member.
    pub(super) async fn replace(&mut self, i: usize, note: &mut String) -> Result<()> {
        let peer = self.cluster.members[i].peer_url.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Remove it (if it is still a member), through any other member that answers.
        loop {
            if Instant::now() > deadline {
                bail!(
                    "could not remove {} from the cluster within 60s",
                    self.name(i)
                );
            }
            match self
                .member_call(
                    i,
                    |mut c, peer| async move {
                        let list = c.member_list().await?;
                        match list
                            .members()
                            .iter()
                            .find(|m| m.peer_urls().contains(&peer))
                        {
                            Some(m) => c.member_remove(m.id()).await.map(|_| ()),
                            None => Ok(()),
                        }
                    },
                    &peer,
                )
                .await
            {
                Ok(()) => break,
                Err(_) => sleep(Duration::from_millis(500)).await,
            }
        }
        self.cluster.kill_member(i)?;
        disk::wipe(&self.cluster.members[i].data_dir)?;
        let members = loop {
            if Instant::now() > deadline {
                bail!("could not add {} back within 60s", self.name(i));
            }
            let added = self
                .member_call(
                    i,
                    |mut c, peer| async move {
                        let r = c.member_add([peer], None).await?;
                        Ok(r.member_list()
                            .iter()
                            .map(|m| m.peer_urls().to_vec())
                            .collect::<Vec<_>>())
                    },
                    &peer,
                )
                .await;
            match added {
                Ok(m) => break m,
                Err(_) => sleep(Duration::from_millis(500)).await,
            }
        };
        let initial: Vec<String> = self
            .cluster
            .members
            .iter()
            .filter(|m| members.iter().any(|urls| urls.contains(&m.peer_url)))
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        self.cluster
            .start_member_with(i, &initial.join(","), "existing")
            .with_context(|| format!("starting the re-added {}", self.name(i)))?;
        let ok = self.ready(i, Duration::from_secs(60)).await;
        note.push_str(&format!(
            "; {} removed, wiped and added back{}",
            self.name(i),
            if ok {
                ""
            } else {
                " (not serving reads after 60s)"
            }
        ));
        Ok(())
    }

    /// Runs `call` against the members other than `not` in turn until one succeeds.
    async fn member_call<T, F, Fut>(&mut self, not: usize, call: F, peer: &str) -> Result<T>
    where
        F: Fn(Client, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = None;
        for j in (0..self.n()).filter(|&j| j != not) {
            if !self.cluster.members[j].is_running() {
                continue;
            }
            let c = self.clients[j].clone();
            match tokio::time::timeout(Duration::from_secs(5), call(c, peer.to_string())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some("no answer within 5s".into()),
            }
        }
        bail!("no member answered: {}", last.unwrap_or_default())
    }
}
