//! What apply must do to the cluster, decided from what was observed (pure logic, unit-tested):
//! bootstrap, start stopped members, add / replace / remove members, rolling restarts — in an order that
//! never loses quorum, refusing any step that would.

use std::collections::BTreeMap;

/// One member as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member ID.
    pub id: u64,
    /// Name (empty until an added member first starts).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Learner (non-voting).
    pub is_learner: bool,
    /// Answered a status request just now.
    pub healthy: bool,
}

/// The cluster as observed through its client API (None: no member answered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Members, if any endpoint answered.
    pub members: Option<Vec<Member>>,
    /// Leader ID.
    pub leader: Option<u64>,
}

/// One member of cluster.yaml and what its host looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Member name.
    pub name: String,
    /// Its peer URL.
    pub peer_url: String,
    /// Its data dir holds a Raft log.
    pub has_data: bool,
    /// Its process runs.
    pub running: bool,
    /// The running process was started with other files or another binary than those now on the host.
    pub stale: bool,
}

/// One step, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A brand-new cluster: start every member with state `new`, in parallel.
    Bootstrap(Vec<String>),
    /// Start an initialized member that is not running.
    Start(String),
    /// MemberAdd as learner, start with state `existing`, promote once caught up.
    Add {
        /// Member name.
        name: String,
        /// Move an old data dir aside first (left by an earlier membership).
        stale_data: bool,
    },
    /// A member that was added but never started: start it with state `existing`, then promote.
    Join(String),
    /// The member exists but its host lost its data: remove it, then add it again.
    Replace {
        /// Member name.
        name: String,
        /// Its current member ID.
        id: u64,
    },
    /// MemberRemove, then stop and disable it on its host (if known).
    Remove {
        /// Member name (or its peer URL when it never started).
        name: String,
        /// Member ID.
        id: u64,
    },
    /// Restart to pick up a new binary or new files; waits for health and catch-up before the next.
    Restart {
        /// Member name.
        name: String,
        /// It is the leader (restarted last).
        leader: bool,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Bootstrap(n) => write!(
                f,
                "bootstrap a new cluster of {} ({})",
                n.len(),
                n.join(", ")
            ),
            Step::Start(n) => write!(f, "start {n} (initialized, not running)"),
            Step::Add { name, stale_data } => write!(
                f,
                "add {name} as learner, start it with state existing, promote when caught up{}",
                if *stale_data {
                    " (its old data dir is moved aside)"
                } else {
                    ""
                }
            ),
            Step::Join(n) => write!(f, "start {n} (added earlier, never started), then promote"),
            Step::Replace { name, id } => write!(
                f,
                "replace {name} (member {id:x} lost its data dir): remove it, then add it again"
            ),
            Step::Remove { name, id } => {
                write!(f, "remove {name} (member {id:x}), stop and disable it")
            }
            Step::Restart { name, leader } => write!(
                f,
                "restart {name}{} to pick up the new binary or files",
                if *leader { " (leader, last)" } else { "" }
            ),
        }
    }
}

/// A step that would lose quorum or cannot be decided safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// The steps that bring the observed cluster to `wanted`.
pub fn plan(wanted: &[Wanted], observed: &Observed) -> Result<Vec<Step>, PlanError> {
    let Some(members) = &observed.members else {
        return plan_unreachable(wanted);
    };
    let by_url: BTreeMap<&str, &Member> = members
        .iter()
        .flat_map(|m| m.peer_urls.iter().map(move |u| (u.as_str(), m)))
        .collect();
    let mut steps = Vec::new();
    let mut adds = Vec::new();
    let mut restarts = Vec::new();
    for w in wanted {
        let member = by_url
            .get(w.peer_url.as_str())
            .copied()
            .or_else(|| members.iter().find(|m| m.name == w.name));
        match member {
            Some(_) if w.has_data && !w.running => steps.push(Step::Start(w.name.clone())),
            Some(m) if w.has_data => {
                if w.stale {
                    restarts.push((w.name.clone(), observed.leader == Some(m.id)));
                }
            }
            Some(m) if m.name.is_empty() => adds.push(Step::Join(w.name.clone())),
            Some(m) => {
                adds.push(Step::Replace {
                    name: w.name.clone(),
                    id: m.id,
                });
            }
            None => adds.push(Step::Add {
                name: w.name.clone(),
                stale_data: w.has_data,
            }),
        }
    }
    let kept: Vec<&Member> = members
        .iter()
        .filter(|m| {
            wanted.iter().any(|w| {
                m.peer_urls.contains(&w.peer_url) || (!m.name.is_empty() && m.name == w.name)
            })
        })
        .collect();
    let gone: Vec<&Member> = members
        .iter()
        .filter(|m| !kept.iter().any(|k| k.id == m.id))
        .collect();
    // Quorum bookkeeping: adds come first (they only raise the voter count once promoted), then removals,
    // each checked against the voters still healthy.
    let mut voters = members.iter().filter(|m| !m.is_learner).count();
    let mut healthy = members
        .iter()
        .filter(|m| !m.is_learner && m.healthy)
        .count();
    for a in &adds {
        if let Step::Replace { name, id } = a {
            let m = members.iter().find(|m| m.id == *id);
            check_remove(
                name,
                m.is_some_and(|m| m.healthy),
                &mut voters,
                &mut healthy,
            )?;
        }
    }
    voters += adds
        .iter()
        .filter(|a| !matches!(a, Step::Replace { .. }))
        .count();
    healthy += adds
        .iter()
        .filter(|a| !matches!(a, Step::Replace { .. }))
        .count();
    steps.extend(adds);
    for m in gone {
        let name = if m.name.is_empty() {
            m.peer_urls.join(",")
        } else {
            m.name.clone()
        };
        if !m.is_learner {
            check_remove(&name, m.healthy, &mut voters, &mut healthy)?;
        }
        steps.push(Step::Remove { name, id: m.id });
    }
    if !restarts.is_empty() && voters > 1 && healthy < quorum(voters) + 1 {
        return Err(PlanError(format!(
            "restarting a member would lose quorum: only {healthy} of {voters} voting members are healthy \
             (a rolling restart needs {}); fix the unhealthy members first (`provision status`)",
            quorum(voters) + 1
        )));
    }
    restarts.sort_by_key(|(_, leader)| *leader);
    steps.extend(
        restarts
            .into_iter()
            .map(|(name, leader)| Step::Restart { name, leader }),
    );
    Ok(steps)
}

fn check_remove(
    name: &str,
    was_healthy: bool,
    voters: &mut usize,
    healthy: &mut usize,
) -> Result<(), PlanError> {
    let after = voters.saturating_sub(1);
    let healthy_after = healthy.saturating_sub(usize::from(was_healthy));
    if after == 0 {
        return Err(PlanError(format!(
            "removing {name} would leave no member; use `provision reset` to remove the whole cluster"
        )));
    }
    if healthy_after < quorum(after) {
        return Err(PlanError(format!(
            "removing {name} would lose quorum: {healthy_after} healthy of {after} remaining voting members \
             (quorum {}); bring the unhealthy members back first (`provision status`)",
            quorum(after)
        )));
    }
    *voters = after;
    *healthy = healthy_after;
    Ok(())
}

/// No member answered: a new cluster, or members to start.
fn plan_unreachable(wanted: &[Wanted]) -> Result<Vec<Step>, PlanError> {
    if wanted.iter().all(|w| !w.has_data) {
        if let Some(w) = wanted.iter().find(|w| w.running) {
            return Err(PlanError(format!(
                "{} runs a member but has no data dir and no member answers: stop it first",
                w.name
            )));
        }
        return Ok(vec![Step::Bootstrap(
            wanted.iter().map(|w| w.name.clone()).collect(),
        )]);
    }
    let stopped: Vec<Step> = wanted
        .iter()
        .filter(|w| w.has_data && !w.running)
        .map(|w| Step::Start(w.name.clone()))
        .collect();
    if stopped.is_empty() {
        let running: Vec<&str> = wanted
            .iter()
            .filter(|w| w.running)
            .map(|w| w.name.as_str())
            .collect();
        return Err(PlanError(format!(
            "members {} run but none answers on its client URL; check their logs and that this machine may \
             reach the client port (firewall.client_sources)",
            running.join(", ")
        )));
    }
    // Members without data wait for the others: they are added once the cluster answers again.
    Ok(stopped)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
