//! WAL damage: members killed, their last segment damaged, restarted, and their refusal (or not)
//! recorded; a refusing member is replaced so the run goes on.

use std::time::Duration;

use anyhow::Result;
use tokio::time::{sleep, Instant};

use super::{last_line, After, Nemesis};
use crate::disk;
use crate::history::{Outcome, Req, HARNESS_CLIENT};

impl Nemesis<'_> {
    /// Kills `hit`, damages their last WAL segment, restarts them, and sees whether they refuse.
    pub(super) async fn corrupt(
        &mut self,
        hit: &[usize],
        damage: disk::Damage,
        note: &mut String,
    ) -> Result<After> {
        for &i in hit {
            self.cluster.kill_member(i)?;
        }
        // With one member down the others still form a quorum: a write through them puts every
        // committed entry on both, so the damaged member can lose nothing the cluster acknowledged
        // (damaging a majority's fsynced data is outside any consensus system's fault model).
        if hit.len() == 1 && !self.barrier(hit[0]).await {
            note.push_str("; no write went through the other members, so nothing was damaged");
            self.cluster.start_member(hit[0])?;
            return Ok(After::Healed);
        }
        for &i in hit {
            let what = disk::corrupt(&self.cluster.members[i].data_dir, damage, &mut self.rng)?;
            note.push_str(&format!("; {}: {what}", self.name(i)));
            self.cluster.start_member(i)?;
        }
        // A member that refuses does so while reading its WAL, within seconds.
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut refused: Vec<usize> = Vec::new();
        while Instant::now() < deadline && refused.len() < hit.len() {
            for &i in hit {
                if !refused.contains(&i) && !self.cluster.members[i].is_running() {
                    refused.push(i);
                }
            }
            sleep(Duration::from_millis(250)).await;
        }
        for &i in &refused {
            let why = format!(
                "{} refused to start: {}",
                self.name(i),
                last_line(&self.cluster.members[i].log)
            );
            note.push_str(&format!("; {why}"));
            self.detected.push(why);
        }
        for &i in hit.iter().filter(|i| !refused.contains(i)) {
            note.push_str(&format!("; {} started on the damaged WAL", self.name(i)));
        }
        if self.n() - refused.len() <= self.n() / 2 {
            note.push_str("; no quorum left to repair with: the run ends here");
            return Ok(After::QuorumLost);
        }
        for i in refused {
            self.cluster.kill_member(i)?;
            if let Err(e) = self.replace(i, note).await {
                note.push_str(&format!("; {e:#}"));
            }
        }
        Ok(After::Healed)
    }

    /// Writes through the members other than `down` until one write succeeds (recorded like any
    /// other write).
    async fn barrier(&mut self, down: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for i in (0..self.n()).filter(|&i| i != down) {
                self.barrier_seq += 1;
                let req = Req::Put {
                    key: "barrier".into(),
                    value: format!("barrier-{}", self.barrier_seq),
                    lease: 0,
                };
                let mut c = self.clients[i].clone();
                if matches!(
                    self.rec.run(HARNESS_CLIENT, i, &mut c, req).await,
                    Outcome::Ok(_)
                ) {
                    return true;
                }
            }
            sleep(Duration::from_millis(300)).await;
        }
        false
    }
}
