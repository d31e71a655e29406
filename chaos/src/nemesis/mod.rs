//! The nemesis: injects one fault at a time into the running cluster, heals it, and then acts as
//! systemd would (`Restart=on-failure`): a member that exited on its own is started again, and one
//! that keeps refusing to start is replaced (removed, wiped, added back) so the run can go on.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_tests::cluster::Cluster;
use etcd_client::{Client, StatusResponse};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::{sleep, Instant};

mod corrupt;
mod replace;

use crate::disk;
use crate::history::FaultRecord;
use crate::net::Net;
use crate::record::Recorder;
use crate::schedule::{Fault, Target, Timing};

/// What became of the cluster after a fault.
pub enum After {
    /// Healed; the run goes on.
    Healed,
    /// Too many members refused to start (detected corruption): no quorum is left to repair with.
    QuorumLost,
}

/// The fault injector of one run.
pub struct Nemesis<'a> {
    /// The cluster (members are killed when it drops).
    pub cluster: Cluster,
    net: &'a Net,
    rng: ChaCha8Rng,
    rec: Arc<Recorder>,
    timing: Timing,
    clients: Vec<Client>,
    /// Members that refused to start after injected corruption.
    pub detected: Vec<String>,
    /// Members that exited or refused to start with neither corruption nor a full disk to explain it.
    pub refusals: Vec<String>,
    barrier_seq: u64,
}

/// Why a member exited, from its log: a Go panic's line, a Rust panic's message, a fatal log line
/// or an error, else the last line.
fn last_line(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let rust_panic = lines
        .iter()
        .rposition(|l| l.contains("panicked at"))
        .and_then(|i| lines.get(i + 1));
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("panic: "))
        .or(rust_panic)
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| l.contains(" C | ") || l.starts_with("cairn: ") || l.contains("ERROR"))
        })
        .or(lines.last())
        .copied()
        .unwrap_or("");
    line.chars().take(300).collect()
}

fn signal(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on the PID of a child this process started and has not reaped.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

impl<'a> Nemesis<'a> {
    /// A nemesis for `cluster`, with one client per member for status and membership calls.
    pub fn new(
        cluster: Cluster,
        net: &'a Net,
        rng: ChaCha8Rng,
        rec: Arc<Recorder>,
        timing: Timing,
        clients: Vec<Client>,
    ) -> Self {
        Nemesis {
            cluster,
            net,
            rng,
            rec,
            timing,
            clients,
            detected: Vec::new(),
            refusals: Vec::new(),
            barrier_seq: 0,
        }
    }

    fn n(&self) -> usize {
        self.cluster.members.len()
    }

    fn name(&self, i: usize) -> String {
        self.cluster.members[i].name.clone()
    }

    /// Every member's Status, asked in parallel (`None`: no answer within a second and a half).
    async fn statuses(&self) -> Vec<Option<StatusResponse>> {
        let asks = self.clients.iter().cloned().map(|mut c| async move {
            tokio::time::timeout(Duration::from_millis(1500), c.status())
                .await
                .ok()
                .and_then(Result::ok)
        });
        futures::future::join_all(asks).await
    }

    /// The member that leads, by the members' own answers.
    pub async fn leader(&self) -> Option<usize> {
        let st = self.statuses().await;
        st.iter().position(|s| {
            s.as_ref().is_some_and(|s| {
                s.header().map(|h| h.member_id()) == Some(s.leader()) && s.leader() != 0
            })
        })
    }

    async fn pick(&mut self, who: Target) -> usize {
        let random = self.rng.random_range(0..self.n());
        match who {
            Target::Random => random,
            Target::Leader => self.leader().await.unwrap_or(random),
            Target::Member(i) => i % self.n(),
        }
    }

    /// Whether member `i` answers a linearizable read within `timeout`.
    async fn ready(&mut self, i: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.cluster.members[i].is_running() {
                return false;
            }
            let mut c = self.clients[i].clone();
            let probe =
                tokio::time::timeout(Duration::from_secs(2), c.get("chaos-ready-probe", None));
            if matches!(probe.await, Ok(Ok(_))) {
                return true;
            }
            sleep(Duration::from_millis(200)).await;
        }
        false
    }

    /// Waits (bounded) until every running member serves linearizable reads.
    pub async fn settle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for i in 0..self.n() {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.ready(i, left).await {
                return false;
            }
        }
        true
    }

    /// Injects `fault`, heals it, restarts what exited, and returns its record.
    pub async fn apply(&mut self, fault: &Fault) -> Result<(FaultRecord, After)> {
        // Set again once the targets are known: finding the leader takes time that is not the fault's.
        let mut start = self.rec.now();
        let mut targets = Vec::new();
        let mut note = String::new();
        let mut after = After::Healed;
        let e = self.timing.election_ms;
        match fault {
            Fault::Kill { who, restart_ms } => {
                let i = self.pick(*who).await;
                start = self.rec.now();
                targets.push(i);
                self.cluster.kill_member(i)?;
                sleep(Duration::from_millis(*restart_ms)).await;
                self.cluster.start_member(i)?;
            }
            Fault::KillAll { restart_ms } => {
                targets.extend(0..self.n());
                self.cluster.kill_all()?;
                sleep(Duration::from_millis(*restart_ms)).await;
                self.cluster.start_all()?;
            }
            Fault::Pause { who, ms } => {
                let i = self.pick(*who).await;
                start = self.rec.now();
                targets.push(i);
                let pid = self.cluster.members[i].pid();
                signal(pid, libc::SIGSTOP);
                sleep(Duration::from_millis(*ms)).await;
                signal(pid, libc::SIGCONT);
            }
            Fault::Isolate { who, ms } => {
                let l = self.pick(*who).await;
                targets.push(l);
                let others: Vec<usize> = (0..self.n()).filter(|&j| j != l).collect();
                self.net.cut(&[l], &others)?;
                start = self.rec.now();
                sleep(Duration::from_millis(*ms)).await;
                self.net.heal()?;
            }
            Fault::Split { ms } => {
                let mut all: Vec<usize> = (0..self.n()).collect();
                all.shuffle(&mut self.rng);
                let (minority, majority) = all.split_at((self.n() - 1) / 2);
                targets.extend(minority);
                self.net.cut(minority, majority)?;
                start = self.rec.now();
                sleep(Duration::from_millis(*ms)).await;
                self.net.heal()?;
            }
            Fault::OneWay { ms } => {
                let a = self.rng.random_range(0..self.n());
                let b = (a + self.rng.random_range(1..self.n())) % self.n();
                targets.extend([a, b]);
                self.net.drop_one_way(a, b)?;
                start = self.rec.now();
                note = format!("{} -> {} dropped", self.name(a), self.name(b));
                sleep(Duration::from_millis(*ms)).await;
                self.net.heal()?;
            }
            Fault::Replace { who } => {
                let i = self.pick(*who).await;
                start = self.rec.now();
                targets.push(i);
                // Removing a member while another is down leaves a configuration that needs the
                // down one to commit (etcd refuses it too, --strict-reconfig-check): only replace
                // in a healthy cluster.
                let mut others_ready = true;
                for j in (0..self.n()).filter(|&j| j != i) {
                    others_ready &= self.ready(j, Duration::from_secs(5)).await;
                }
                if !others_ready {
                    note.push_str("; skipped: not every other member serves reads");
                } else if let Err(e) = self.replace(i, &mut note).await {
                    note.push_str(&format!("; {e:#}"));
                }
            }
            Fault::DiskFull { who, ms } => {
                let i = self.pick(*who).await;
                start = self.rec.now();
                targets.push(i);
                let dir = self.cluster.members[i].data_dir.clone();
                let filled = disk::fill(&dir)?;
                note = format!("filled {} MiB", filled >> 20);
                sleep(Duration::from_millis(*ms)).await;
                disk::free(&dir)?;
            }
            Fault::Corrupt { members, damage } => {
                let mut all: Vec<usize> = (0..self.n()).collect();
                all.shuffle(&mut self.rng);
                let hit: Vec<usize> = all[..(*members).min(self.n())].to_vec();
                targets.extend(&hit);
                after = self.corrupt(&hit, *damage, &mut note).await?;
            }
        }
        if matches!(after, After::Healed) {
            // etcd exits on a full disk and systemd restarts it: that exit is expected.
            let explained = matches!(fault, Fault::DiskFull { .. });
            self.supervise(&mut note, explained).await?;
            if !self.settle(Duration::from_secs(5 * e / 1000 + 10)).await {
                note.push_str("; not every member served reads within the settle time");
            }
        }
        let record = FaultRecord {
            kind: fault.name(),
            targets: targets.iter().map(|&i| self.name(i)).collect(),
            start,
            end: self.rec.now(),
            note: note.trim_start_matches("; ").to_string(),
        };
        Ok((record, after))
    }

    /// Starts every member that is not running, as systemd would; replaces one that keeps refusing.
    /// Exits not `explained` by the fault are recorded as refusals.
    pub async fn supervise(&mut self, note: &mut String, explained: bool) -> Result<()> {
        for i in 0..self.n() {
            if self.cluster.members[i].is_running() {
                continue;
            }
            let mut why = match self.cluster.members[i].exit_status() {
                Some(st) => format!(
                    "{} exited ({st}): {}",
                    self.name(i),
                    last_line(&self.cluster.members[i].log)
                ),
                None => format!("{} was down", self.name(i)),
            };
            let mut up = false;
            for _ in 0..3 {
                self.cluster.kill_member(i)?;
                sleep(Duration::from_secs(1)).await;
                self.cluster.start_member(i)?;
                sleep(Duration::from_secs(5)).await;
                if self.cluster.members[i].is_running() {
                    up = true;
                    break;
                }
                why = format!(
                    "{} refuses to start: {}",
                    self.name(i),
                    last_line(&self.cluster.members[i].log)
                );
            }
            note.push_str(&format!("; {why}; restarted"));
            if !explained || !up {
                self.refusals.push(why);
            }
            if !up {
                if let Err(e) = self.replace(i, note).await {
                    note.push_str(&format!("; {e:#}"));
                }
            }
        }
        Ok(())
    }

    /// Heals everything the nemesis may have left: partitions, pauses, full disks, stopped members;
    /// returns what it had to do.
    pub async fn heal_all(&mut self) -> Result<String> {
        self.net.heal()?;
        for i in 0..self.n() {
            signal(self.cluster.members[i].pid(), libc::SIGCONT);
            disk::free(&self.cluster.members[i].data_dir)?;
        }
        let mut note = String::new();
        self.supervise(&mut note, false).await?;
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reason_for_an_exit_is_the_panic_or_fatal_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("m0.log");
        let rust = "starting\nthread 'x' panicked at src/a.rs:1:1:\nfollower log reversion\nstack backtrace:\n  0: f\ncairn: internal error\n";
        std::fs::write(&log, rust).unwrap();
        assert_eq!(super::last_line(&log), "follower log reversion");
        let go = "x C | etcdmain: walpb: crc mismatch\npanic: tocommit(9) is out of range\n\tgo.etcd.io/etcd/raft/node.go:242\n";
        std::fs::write(&log, go).unwrap();
        assert_eq!(super::last_line(&log), "panic: tocommit(9) is out of range");
        std::fs::write(&log, "a\nb\n").unwrap();
        assert_eq!(super::last_line(&log), "b");
    }
}
