//! `cairn-chaos k8s`: the API-server-like workload (`cairn_tests::apiserver`, issue 22) as the load
//! of a fault run. The members run in the harness's network namespaces; the nemesis kills the leader
//! and cuts off the member the require-leader watches are on; compactions land while lists page. The
//! workload's own checks (no lost write, no missed or reordered event, consistent lists) then judge
//! the run, with what the partitions did to the watches and what the compactions did to the lists.

mod lists;
pub mod plan;
mod verdict;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_tests::apiserver::{Options, Report, Workload};
use cairn_tests::cluster::{Cluster, Flavor};
use cairn_tests::grpc::connect_with;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::sleep;

use crate::nemesis::Nemesis;
use crate::net::Net;
use crate::record::Recorder;
use crate::schedule::{Fault, Target, Timing};
use plan::Step;

/// What one run does.
pub struct Spec {
    /// Server flavour and binary.
    pub server: Flavor,
    pub binary: PathBuf,
    /// Seed of the faults, their targets and the writers' choices.
    pub seed: u64,
    /// The faults, in order.
    pub steps: Vec<Step>,
    pub timing: Timing,
    /// The workload's size (its duration is set from the steps).
    pub load: Options,
    /// The members' `--experimental-watch-progress-notify-interval`.
    pub progress_interval: String,
    /// Certificates, data and logs.
    pub dir: PathBuf,
}

/// The outcome: the workload's report and every violation (the report's and the faults').
pub struct Outcome {
    pub report: Report,
    pub violations: Vec<String>,
}

/// Runs `spec`, printing a line per step.
pub async fn run(spec: &Spec, net: &Net, print: &dyn Fn(&str)) -> Result<Outcome> {
    let e = spec.timing.election_ms;
    let mut cluster = crate::run::in_namespaces(
        Cluster::builder(spec.server, 3)
            .binary(&spec.binary)
            .dir(&spec.dir)
            .token(format!("k8s-chaos-{}", spec.seed)),
        net,
        spec.timing,
        [format!(
            "--experimental-watch-progress-notify-interval={}",
            spec.progress_interval
        )],
    )
    .create()?;
    cluster.start_all()?;
    cluster
        .wait_ready(Duration::from_secs(120))
        .await
        .context("the cluster did not start")?;
    let endpoints: Vec<String> = cluster
        .members
        .iter()
        .map(|m| m.client_url.clone())
        .collect();
    let eps: Vec<&str> = endpoints.iter().map(String::as_str).collect();
    let pki = cluster.pki.clone();

    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let warmup = Duration::from_millis(2 * e);
    let gaps: Vec<Duration> = spec
        .steps
        .iter()
        .map(|_| plan::gap(&mut rng, spec.timing))
        .collect();
    let planned: Duration = spec.steps.iter().map(|s| s.planned(spec.timing)).sum();
    let mut load = spec.load.clone();
    // An upper bound: the load is stopped once the last step's gap is over.
    load.duration = warmup + 2 * planned + gaps.iter().sum::<Duration>() + Duration::from_secs(60);
    load.seed = spec.seed;
    load.watch_member = Some(rng.random_range(0..3));
    print(&format!(
        "watches opened on m{}",
        load.watch_member.unwrap_or(0)
    ));
    let mut workload = Workload::start(&pki, &eps, &load);

    let rec = Arc::new(Recorder::new());
    let conns = crate::run::clients(&cluster).await?;
    let mut nem = Nemesis::new(
        cluster,
        net,
        ChaCha8Rng::seed_from_u64(rng.random()),
        rec.clone(),
        spec.timing,
        conns,
    );
    let mut compactor = connect_with(&pki, &eps, false).await?;
    let mut violations = Vec::new();
    let mut cuts = Vec::new();
    let mut probes = lists::Outcome::default();
    sleep(warmup).await;
    // Every watch open before the first fault, so the first partition finds all of them.
    let watches = load.resources + load.small_watches + load.open_streams;
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(30);
    while workload.open_streams().iter().sum::<usize>() < watches
        && tokio::time::Instant::now() < ready_by
    {
        sleep(Duration::from_millis(100)).await;
    }
    for (step, gap) in spec.steps.iter().zip(&gaps) {
        let mut cut_member = None;
        let fault = match step {
            Step::KillLeader { restart_ms } => Some(Fault::Kill {
                who: Target::Leader,
                restart_ms: *restart_ms,
            }),
            Step::IsolateWatchMember { ms } => {
                let open = workload.open_streams();
                let m = (0..open.len()).max_by_key(|&i| open[i]).unwrap_or(0);
                cut_member = Some(m);
                Some(Fault::Isolate {
                    who: Target::Member(m),
                    ms: *ms,
                })
            }
            Step::CompactDuringLists { rounds } => {
                // A cluster too slow to answer is no wrong answer: noted, and the run goes on.
                match lists::compact_during_lists(&mut compactor, *rounds).await {
                    Ok(o) => {
                        print(&format!(
                            "{:>7.1}s {}: {} compactions, probe list refused as compacted {} time(s)",
                            rec.now() as f64 / 1e6,
                            step.name(),
                            o.compactions,
                            o.refused
                        ));
                        probes.compactions += o.compactions;
                        probes.refused += o.refused;
                        probes.violations.extend(o.violations);
                    }
                    Err(e) => print(&format!(
                        "{:>7.1}s {}: not done: {e:#}",
                        rec.now() as f64 / 1e6,
                        step.name()
                    )),
                }
                None
            }
        };
        if let Some(fault) = fault {
            let (r, _) = nem.apply(&fault).await?;
            if let (Step::IsolateWatchMember { ms }, Some(m)) = (step, cut_member) {
                let at = rec.instant(r.start);
                cuts.push(verdict::Cut {
                    member: m,
                    at,
                    healed: at + Duration::from_millis(*ms),
                });
            }
            print(&format!(
                "{:>7.1}s {} on {}{}{}",
                r.start as f64 / 1e6,
                step.name(),
                r.targets.join(","),
                if r.note.is_empty() { "" } else { ": " },
                r.note
            ));
        }
        sleep(*gap).await;
    }
    workload.stop();
    let report = workload.finish().await?;
    let _ = nem.heal_all().await;
    drop(nem);

    violations.extend(report.violations.iter().cloned());
    violations.extend(probes.violations);
    let limit = plan::end_limit(spec.timing);
    for cut in &cuts {
        let o = verdict::judge(&report.recorded.streams, cut, limit);
        print(&format!(
            "partition of m{}: {} require-leader watch streams open on it, {} ended with \"no leader\" \
             (slowest {:.1}s after the cut, limit {:.0}s), {} resumed on another member (slowest {:.1}s)",
            cut.member,
            o.open,
            o.ended,
            o.slowest_end.as_secs_f64(),
            limit.as_secs_f64(),
            o.resumed,
            o.slowest_resume.as_secs_f64()
        ));
        if o.open == 0 {
            violations.push(format!(
                "no watch stream was open on m{} when it was cut off",
                cut.member
            ));
        }
        violations.extend(o.violations);
    }
    print(&format!(
        "compactions by the fault: {}, probe lists refused as compacted: {}, workload lists too old: {}",
        probes.compactions, probes.refused, report.recorded.lists_too_old
    ));
    Ok(Outcome { report, violations })
}

/// Chooses the steps: the CI's or `count` from the seed.
pub fn steps(seed: u64, short: bool, count: usize, t: Timing) -> Vec<Step> {
    if short {
        plan::short(t)
    } else {
        plan::random(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x6b38), t, count)
    }
}
