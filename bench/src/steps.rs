//! The standard suite as a list of steps. Every system's cluster runs at once and each step runs on each
//! system in turn, so the machine's changing load (it is shared) falls on all systems alike.

use crate::auth;
use crate::procstat;
use crate::report::{Row, AUTH_CERT, AUTH_OFF, AUTH_TOKEN};
use crate::sut::Sut;
use crate::workload::{self, Outcome};
use anyhow::Result;
use cairn_tests::grpc::connect_with;
use etcd_client::Client;
use std::path::Path;
use std::time::Duration;

/// How the lone client of a 1-client put reaches the cluster.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    /// One client given every member's URL, as users configure clients (it balances over them).
    AllEndpoints,
    /// Connected to the leader only.
    Leader,
    /// Connected to a follower only (it forwards each put).
    Follower,
}

/// One step of the suite.
#[derive(Debug, Clone)]
pub enum Step {
    /// Puts with this many clients over the pool.
    Put(usize),
    /// Puts of one client, reaching the cluster this way.
    PutOne(Route),
    /// Reads back every acknowledged put.
    Verify,
    /// Gets, serializable or not.
    Get {
        serializable: bool,
    },
    Watch,
    Lease,
    /// `etcdctl check perf --load=<load>`.
    CheckPerf(String),
    /// The auth comparison, in rounds: puts with auth off, auth switched on, puts as a certificate user
    /// and as a password user, auth switched off again.
    AuthOff(u32),
    AuthEnable(u32),
    AuthCert(u32),
    AuthToken(u32),
    AuthDisable,
    /// Memory after all the load.
    RssAfter,
    /// kill -9 of every member, restart, read back.
    Restart,
}

/// What the steps need from the command line.
pub struct Settings<'a> {
    pub duration: Duration,
    pub keyspace: u64,
    pub get_clients: usize,
    pub lease_clients: usize,
    pub auth_clients: usize,
    pub conns: usize,
    pub watchers: usize,
    pub watch_rate: u32,
    pub etcdctl: &'a Path,
}

/// The steps in order for these workloads, put client counts and `check perf` loads.
pub fn plan(
    workloads: &[String],
    put_clients: &[usize],
    loads: &[String],
    auth_rounds: u32,
) -> Vec<Step> {
    let wants = |w: &str| workloads.iter().any(|x| x == w);
    let mut steps = Vec::new();
    for &c in put_clients.iter().filter(|_| wants("put")) {
        if c == 1 {
            steps.extend([Route::AllEndpoints, Route::Leader, Route::Follower].map(Step::PutOne));
        } else {
            steps.push(Step::Put(c));
        }
    }
    steps.push(Step::Verify);
    if wants("get") {
        steps.push(Step::Get {
            serializable: false,
        });
        steps.push(Step::Get { serializable: true });
    }
    if wants("watch") {
        steps.push(Step::Watch);
    }
    if wants("lease") {
        steps.push(Step::Lease);
    }
    // scripts/bench.sh passes `--check-perf s` and callers may add their own list: run each load once.
    let mut seen: Vec<&String> = Vec::new();
    for l in loads {
        if !seen.contains(&l) {
            seen.push(l);
            steps.push(Step::CheckPerf(l.clone()));
        }
    }
    // Rounds of off/on (`--auth-rounds`), because the machine's load drifts between any two
    // measurements: each round's ratios compare neighbours. Auth stays on after the last (the
    // restart's read-back then runs as the certificate user).
    if wants("auth") {
        for r in 1..=auth_rounds {
            if r > 1 {
                steps.push(Step::AuthDisable);
            }
            steps.extend([
                Step::AuthOff(r),
                Step::AuthEnable(r),
                Step::AuthCert(r),
                Step::AuthToken(r),
            ]);
        }
    }
    steps.push(Step::RssAfter);
    steps.push(Step::Restart);
    steps
}

/// Runs one step on one system.
pub async fn run(set: &Settings<'_>, sut: &mut Sut, step: &Step) -> Result<()> {
    let name = sut.run.system.clone();
    let d = set.duration;
    let pool = sut.pool.clone();
    let ledger = sut.ledger.clone();
    let keyspace = set.keyspace;
    match step {
        Step::Put(c) => {
            let fut = workload::put(&pool, *c, d, keyspace, ledger);
            measure(sut, format!("put, {c} clients"), Some(*c), fut).await
        }
        Step::PutOne(route) => {
            let (client, how) = lone_client(sut, *route).await?;
            let curve = matches!(route, Route::AllEndpoints).then_some(1);
            let one = [client];
            let fut = workload::put(&one, 1, d, keyspace, ledger);
            measure(sut, format!("put, 1 client {how}"), curve, fut).await
        }
        Step::Verify => {
            eprintln!("==> {name}: reading back every acknowledged put");
            let v = sut.ledger.verify(&mut pool[0].clone()).await?;
            sut.run.verdicts.push(("live".into(), v));
            Ok(())
        }
        Step::Get { serializable } => {
            let (g, s) = (set.get_clients, *serializable);
            let kind = if s { "serializable" } else { "linearizable" };
            let fut = workload::get(&pool, g, d, keyspace, s);
            measure(sut, format!("get {kind}, {g} clients"), None, fut).await
        }
        Step::Watch => {
            let w = set.watchers;
            let out = workload::watch_fanout(&pool, w, d, set.watch_rate);
            let label = format!("watch fan-out, 1 writer × {w} watchers");
            measure_fallible(sut, label, out).await
        }
        Step::Lease => {
            let l = set.lease_clients;
            let fut = workload::lease_churn(&pool, l, d);
            measure(
                sut,
                format!("lease grant+keepalive+revoke, {l} clients"),
                None,
                fut,
            )
            .await
        }
        Step::CheckPerf(load) => {
            eprintln!("==> {name}: etcdctl check perf --load={load} (about a minute)");
            let out = check_perf(set.etcdctl, sut, load);
            sut.run.check_perf.push((load.clone(), out));
            Ok(())
        }
        Step::AuthOff(r) => {
            let fut = workload::put(&pool, set.auth_clients, d, keyspace, ledger);
            measure(sut, auth_label(AUTH_OFF, *r), None, fut).await
        }
        Step::AuthEnable(r) => {
            eprintln!("==> {name}: auth enable");
            auth::enable(&mut pool[0].clone(), *r == 1).await
        }
        Step::AuthCert(r) => {
            // The pool's admin certificate is now the user `admin` (its CN), checked on every request.
            let fut = workload::put(&pool, set.auth_clients, d, keyspace, ledger);
            measure(sut, auth_label(AUTH_CERT, *r), None, fut).await
        }
        Step::AuthToken(r) => {
            let users = auth::password_pool(&sut.cluster, &sut.endpoints(), set.conns).await?;
            let fut = workload::put(&users, set.auth_clients, d, keyspace, ledger);
            measure(sut, auth_label(AUTH_TOKEN, *r), None, fut).await
        }
        Step::AuthDisable => {
            eprintln!("==> {name}: auth disable");
            auth::disable(&sut.cluster, &sut.endpoints()[0]).await
        }
        Step::RssAfter => {
            sut.run.rss_kib = sut
                .pids
                .iter()
                .zip(&sut.idle_rss)
                .map(|(&p, &i)| procstat::rss_kib(p).map(|(now, peak)| (i, now, peak)))
                .collect::<Result<_>>()?;
            Ok(())
        }
        Step::Restart => {
            // kill -9 every member, restart, and read everything back again: acknowledged means on disk.
            eprintln!("==> {name}: kill -9 all members, restart, read back again");
            sut.pool.clear();
            sut.cluster.restart_all()?;
            sut.cluster.wait_ready(Duration::from_secs(60)).await?;
            let mut client: Client = sut.cluster.client(0).await?;
            let v = sut.ledger.verify(&mut client).await?;
            sut.run
                .verdicts
                .push(("after kill -9 of all members and restart".into(), v));
            sut.pids = sut.cluster.pids();
            Ok(())
        }
    }
}

/// A row label of the auth comparison: the mode and the round.
fn auth_label(mode: &str, round: u32) -> String {
    format!("{mode} (round {round})")
}

/// The lone client of a 1-client put and how the table names its route.
async fn lone_client(sut: &Sut, route: Route) -> Result<(Client, &'static str)> {
    let n = sut.cluster.members.len();
    Ok(match route {
        Route::AllEndpoints => {
            let urls = sut.endpoints();
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let client = connect_with(&sut.cluster.pki, &urls, false).await?;
            (client, "via all three endpoints")
        }
        Route::Leader => {
            let lead = sut.cluster.leader_index().await?;
            (sut.cluster.client(lead).await?, "via the leader")
        }
        Route::Follower => {
            let lead = sut.cluster.leader_index().await?;
            (sut.cluster.client((lead + 1) % n).await?, "via a follower")
        }
    })
}

/// Runs a workload and records its row with the members' CPU time.
async fn measure(
    sut: &mut Sut,
    label: String,
    curve: Option<usize>,
    workload: impl std::future::Future<Output = Outcome>,
) -> Result<()> {
    measure_fallible(sut, label.clone(), async { Ok(workload.await) })
        .await
        .map(|()| {
            if let Some(row) = sut.run.rows.last_mut() {
                row.curve = curve;
            }
        })
}

async fn measure_fallible(
    sut: &mut Sut,
    label: String,
    workload: impl std::future::Future<Output = Result<Outcome>>,
) -> Result<()> {
    eprintln!("==> {}: {label}", sut.run.system);
    let hz = procstat::ticks_per_second();
    let cpu0 = procstat::cpu_seconds(&sut.pids, hz)?;
    let outcome = workload.await?;
    let cpu_seconds = procstat::cpu_seconds(&sut.pids, hz)? - cpu0;
    eprintln!(
        "    {} ops, {} errors in {:.1?}",
        outcome.ops, outcome.errors, outcome.elapsed
    );
    sut.run.rows.push(Row {
        workload: label,
        outcome,
        cpu_seconds,
        curve: None,
    });
    Ok(())
}

fn check_perf(etcdctl: &Path, sut: &Sut, load: &str) -> String {
    let pki = &sut.cluster.pki;
    let out = std::process::Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", sut.cluster.endpoints()))
        .arg(format!("--cacert={}", pki.ca.display()))
        .arg(format!("--cert={}", pki.admin.crt.display()))
        .arg(format!("--key={}", pki.admin.key.display()))
        .args(["check", "perf", &format!("--load={load}")])
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            format!("{}\n({})", without_progress_bar(&text), o.status)
        }
        Err(e) => format!("could not run {}: {e}", etcdctl.display()),
    }
}

/// Drops `check perf`'s progress-bar frames ("12 / 60  20.00% 00m48s"), keeping its verdict lines.
/// The bar and the verdict share stdout, and the bar's last frame ends its line only when its own
/// 60 s timer runs out: a server that finishes the run's clean-up delete first gets its first verdict
/// line printed right after a frame, so every verdict starts a line of its own before frames go.
fn without_progress_bar(text: &str) -> String {
    let bar = |l: &str| l.contains(" / 60") && l.contains('%');
    let mut text = text.to_string();
    for verdict in [
        "PASS",
        "FAIL",
        "Slowest request took too long",
        "Stddev too high",
    ] {
        text = text.replace(verdict, &format!("\n{verdict}"));
    }
    let lines: Vec<&str> = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty() && !bar(l))
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{plan, Step};

    #[test]
    fn check_perf_output_keeps_only_the_verdict() {
        let raw = " 0 / 60    0.00% 1 / 60    1.67% 00m59s\r60 / 60  100.00% 1m0s\nPASS: Throughput is 150 writes/s\nPASS\n";
        assert_eq!(
            super::without_progress_bar(raw),
            "PASS: Throughput is 150 writes/s\nPASS"
        );
    }

    #[test]
    fn a_verdict_printed_on_the_bars_last_frame_is_kept() {
        let raw = " 0 / 60    0.00% 59 / 60   98.33% 00m01sPASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.017586s\nPASS: Stddev is 0.000492s\nPASS\n\r60 / 60  100.00% 1m0s\n";
        assert_eq!(
            super::without_progress_bar(raw),
            "PASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.017586s\nPASS: Stddev is 0.000492s\nPASS"
        );
    }

    #[test]
    fn auth_comes_after_check_perf_and_before_the_restart() {
        let all: Vec<String> = ["put", "auth"].map(String::from).to_vec();
        let steps = plan(&all, &[1, 16], &["s".into(), "s".into()], 3);
        let names: Vec<String> = steps.iter().map(|s| format!("{s:?}")).collect();
        let at = |p: &str| names.iter().position(|n| n.starts_with(p));
        assert_eq!(
            names.iter().filter(|n| n.starts_with("CheckPerf")).count(),
            1
        );
        assert!(at("CheckPerf") < at("AuthOff"));
        assert!(at("AuthEnable") < at("AuthCert"));
        assert!(at("AuthToken") < at("AuthDisable"));
        assert!(names.iter().any(|n| n == "AuthOff(2)"));
        assert_eq!(
            names.iter().filter(|n| n.starts_with("AuthCert")).count(),
            3
        );
        assert_eq!(names.iter().filter(|n| *n == "AuthDisable").count(), 2);
        assert!(at("AuthToken(3)") < at("Restart"));
        assert!(matches!(steps.last(), Some(Step::Restart)));
        assert_eq!(names.iter().filter(|n| n.starts_with("PutOne")).count(), 3);
    }
}
