//! What the Kubernetes API server needs beyond etcdctl (issue 22): require-leader (`hasleader`
//! metadata) on unary calls and watch streams, watch fragments, one response per replayed batch, and
//! progress notifications. `CAIRN_TEST_FLAVOR=etcd` runs the same assertions against etcd.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cairn_tests::cluster::{Cluster, Flavor};
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::grpc;
use cairn_tests::pause::Paused;
use cairn_tests::wait::wait_for;
use cairn_tests::workspace;
use etcd_client::{WatchOptions, WatchResponse, WatchStream};

/// The next response on a watch stream, or why there is none within `within`.
async fn next(stream: &mut WatchStream, within: Duration) -> Result<WatchResponse> {
    match tokio::time::timeout(within, stream.message()).await {
        Err(_) => bail!("no watch response within {within:?}"),
        Ok(Ok(Some(r))) => Ok(r),
        Ok(Ok(None)) => bail!("the watch stream ended with OK"),
        Ok(Err(e)) => {
            let (code, msg) = grpc::status_of(&e);
            bail!("the watch stream ended with {code} {msg:?}")
        }
    }
}

/// Stops every member but `keep` (cutting it off from its quorum) and waits up to 30 s for `next`, the
/// next message of a require-leader stream on `keep`, to fail instead; asserts it ends as etcd ends
/// such streams, and returns the stopped followers (continued when dropped).
fn cut_off_and_expect_no_leader<T: std::fmt::Debug>(
    rt: &tokio::runtime::Runtime,
    c: &Cluster,
    keep: usize,
    stream: &str,
    next: impl std::future::Future<Output = Result<Option<T>, etcd_client::Error>>,
) -> Paused {
    let paused = Paused::all_but(c, keep);
    let cut = Instant::now();
    let ended = rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(30), next).await {
            Err(_) => Err("still open 30 s after the followers stopped".to_string()),
            Ok(Ok(r)) => Err(format!("a response instead of the end: {r:?}")),
            Ok(Err(e)) => Ok(grpc::status_of(&e)),
        }
    });
    let after = cut.elapsed();
    eprintln!(
        "{:?}: require-leader {stream} on the cut-off leader ended after {after:?}: {ended:?}",
        c.flavor
    );
    assert_eq!(
        ended,
        Ok((
            "Unavailable".to_string(),
            "etcdserver: no leader".to_string()
        ))
    );
    // etcd ends them after three checks, one election timeout (1 s here) apart, found no leader; on a
    // loaded machine the first check may already come before the pause, hence 2 s, not 3.
    assert!(after >= Duration::from_secs(2), "ended after {after:?}");
    paused
}

#[test]
fn require_leader_watches_on_a_cut_off_member_end_with_no_leader_and_its_unary_calls_are_refused() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let li = must(rt.block_on(c.leader_index()));
    let url = c.members[li].client_url.clone();
    let mut strict = must(rt.block_on(grpc::connect_requiring_leader(&c.pki, &url)));
    let mut plain = must(rt.block_on(grpc::connect(&c.pki, &url)));
    let (mut watched, mut unwatched) = must(rt.block_on(async {
        strict.get("k", None).await?;
        let mut w = strict.watch("k", None).await?;
        let mut p = plain.watch("k", None).await?;
        for s in [&mut w, &mut p] {
            let created = next(s, Duration::from_secs(5)).await?;
            anyhow::ensure!(created.created(), "{created:?}");
        }
        anyhow::Ok((w, p))
    }));

    let paused = cut_off_and_expect_no_leader(&rt, &c, li, "watch", watched.message());

    let unary = rt.block_on(strict.get("k", None));
    let refused = unary.as_ref().err().map(grpc::status_of);
    assert_eq!(
        refused,
        Some((
            "Unavailable".to_string(),
            "etcdserver: no leader".to_string()
        )),
        "{unary:?}"
    );
    // Without require-leader the watch stays open, as in etcd.
    let plain_still = rt.block_on(next(&mut unwatched, Duration::from_millis(500)));
    assert!(
        plain_still
            .as_ref()
            .is_err_and(|e| e.to_string().starts_with("no watch response")),
        "{plain_still:?}"
    );

    drop(paused);
    must(wait_for(
        "require-leader calls to pass once the followers run",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            rt.block_on(strict.get("k", None))
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    ));
}

#[test]
fn require_leader_keep_alive_streams_on_a_cut_off_member_end_with_no_leader() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let li = must(rt.block_on(c.leader_index()));
    let url = c.members[li].client_url.clone();
    let mut strict = must(rt.block_on(grpc::connect_requiring_leader(&c.pki, &url)));
    let mut plain = must(rt.block_on(grpc::connect(&c.pki, &url)));
    // Each stream has renewed the lease once (the client's first keep-alive); the keepers stay alive
    // so that neither client closes its side.
    let ((_strict_keeper, mut strict_stream), (_plain_keeper, mut plain_stream)) =
        must(rt.block_on(async {
            let lease = plain.lease_grant(60, None).await?.id();
            let s = strict.lease_keep_alive(lease).await?;
            let p = plain.lease_keep_alive(lease).await?;
            anyhow::Ok((s, p))
        }));

    let paused =
        cut_off_and_expect_no_leader(&rt, &c, li, "keep-alive stream", strict_stream.message());
    // Without require-leader the stream stays open, as in etcd.
    let plain_still = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(500), plain_stream.message()).await
    });
    assert!(plain_still.is_err(), "{plain_still:?}");
    drop(paused);
}

/// A 3-member cluster of the flavour under test, with a 64 KiB request limit and 1 s progress
/// notifications.
fn small_limit_cluster() -> Cluster {
    let flavor = must(Flavor::from_env());
    must(
        Cluster::builder(flavor, 3)
            .extra_args([
                "--max-request-bytes=65536",
                "--experimental-watch-progress-notify-interval=1s",
            ])
            .start(),
    )
}

#[test]
fn replayed_history_comes_as_one_response_or_in_fragments_and_idle_watches_get_progress() {
    let c = small_limit_cluster();
    let rt = must(grpc::runtime());
    let mut client = must(rt.block_on(c.client(0)));
    // 1.6 MB of history: above etcd's fragment limit (64 KiB + 512 KiB of gRPC overhead).
    let value = "v".repeat(8_000);
    let first = must(rt.block_on(async {
        let mut first = 0;
        for i in 0..200 {
            let r = client
                .put(format!("big/{i:03}"), value.as_str(), None)
                .await?;
            if i == 0 {
                first = r.header().map(|h| h.revision()).unwrap_or(0);
            }
        }
        anyhow::Ok(first)
    }));
    let last = first + 199;

    // Without fragments: the 200 revisions replayed as one response (etcd's synced batch).
    let whole = must(rt.block_on(async {
        let opts = WatchOptions::new().with_prefix().with_start_revision(first);
        let mut s = client.watch("big/", Some(opts)).await?;
        next(&mut s, Duration::from_secs(5)).await?;
        next(&mut s, Duration::from_secs(5)).await
    }));
    assert_eq!(whole.events().len(), 200, "one response for the replay");
    assert!(!whole.0.fragment);

    // With fragments: the same events in responses under 576 KiB, fragment on all but the last.
    let parts = must(rt.block_on(async {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(first)
            .with_fragment();
        let mut s = client.watch("big/", Some(opts)).await?;
        next(&mut s, Duration::from_secs(5)).await?;
        let mut parts = Vec::new();
        loop {
            let r = next(&mut s, Duration::from_secs(5)).await?;
            let more = r.0.fragment;
            parts.push(r);
            if !more {
                return anyhow::Ok(parts);
            }
        }
    }));
    let sizes: Vec<usize> = parts.iter().map(|p| p.events().len()).collect();
    eprintln!("{:?}: fragments of the replay: {sizes:?}", c.flavor);
    assert!(parts.len() >= 3, "{sizes:?}");
    let revisions: Vec<i64> = parts
        .iter()
        .flat_map(|p| p.events())
        .filter_map(|e| e.kv().map(|kv| kv.mod_revision()))
        .collect();
    assert_eq!(revisions, (first..=last).collect::<Vec<_>>());

    // An idle watcher that asked for progress hears the current revision about every second; one
    // that did not hears nothing; a ProgressRequest is answered with watch ID -1.
    let (progress, silent, requested) = must(rt.block_on(async {
        let mut s = client
            .watch("idle", Some(WatchOptions::new().with_progress_notify()))
            .await?;
        next(&mut s, Duration::from_secs(5)).await?;
        let started = Instant::now();
        let mut progress = Vec::new();
        while progress.len() < 2 {
            let r = next(&mut s, Duration::from_secs(5)).await?;
            progress.push((r.events().len(), r.header().map(|h| h.revision())));
        }
        let took = started.elapsed();
        let mut q = client.watch("quiet", None).await?;
        next(&mut q, Duration::from_secs(5)).await?;
        let silent = next(&mut q, Duration::from_millis(2_500)).await.is_err();
        q.request_progress().await?;
        let r = next(&mut q, Duration::from_secs(5)).await?;
        let requested = (r.watch_id(), r.header().map(|h| h.revision()));
        anyhow::Ok(((progress, took), silent, requested))
    }));
    eprintln!(
        "{:?}: progress notifications {progress:?}, ProgressRequest answered {requested:?}",
        c.flavor
    );
    assert_eq!(progress.0, vec![(0, Some(last)), (0, Some(last))]);
    assert!(progress.1 < Duration::from_secs(4), "{:?}", progress.1);
    assert!(silent, "a watch without progress_notify got a response");
    assert_eq!(requested, (-1, Some(last)));
}

#[test]
fn an_api_server_like_workload_loses_no_write_misses_no_event_and_lists_consistently() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let endpoints: Vec<&str> = c.members.iter().map(|m| m.client_url.as_str()).collect();
    let opts = cairn_tests::apiserver::Options::short();
    let report = must(rt.block_on(cairn_tests::apiserver::run(&c.pki, &endpoints, &opts)));
    eprintln!(
        "{:?}: API-server-like workload, {:?}:\n{report}",
        c.flavor, opts.duration
    );
    assert!(report.violations.is_empty(), "{report}");
    let r = &report.recorded;
    // The checks only mean something if every part of the workload ran.
    assert!(r.acked.len() > 50, "{report}");
    assert!(r.lists > 10 && r.compactions >= 1, "{report}");
    let resource_watches = r.watched.iter().filter(|(name, _)| !name.starts_with('='));
    assert!(
        resource_watches.clone().count() == opts.resources,
        "{report}"
    );
    assert!(
        resource_watches.clone().all(|(_, e)| !e.is_empty()),
        "{report}"
    );
}

#[test]
fn api_server_watches_that_meet_a_compacted_revision_relist_and_miss_nothing() {
    // Every watch stream is dropped after 1.5 s and reopened 1.5 s later from where it was, while the
    // API server's compaction runs every 0.5 s: the reopened watch's revision is compacted, the
    // member cancels it (compact_revision set) and the watch must re-list its range at a revision
    // and go on from there, as the reflector does, without a missed event after the list.
    let c = cluster();
    let rt = must(grpc::runtime());
    let endpoints: Vec<&str> = c.members.iter().map(|m| m.client_url.as_str()).collect();
    let opts = cairn_tests::apiserver::Options {
        compact_every: Duration::from_millis(500),
        watch_pause: Some(Duration::from_millis(1500)),
        small_watches: 6,
        ..cairn_tests::apiserver::Options::short()
    };
    let report = must(rt.block_on(cairn_tests::apiserver::run(&c.pki, &endpoints, &opts)));
    eprintln!(
        "{:?}: API-server-like workload with lagging watches, {:?}:\n{report}",
        c.flavor, opts.duration
    );
    assert!(report.violations.is_empty(), "{report}");
    let r = &report.recorded;
    assert!(r.acked.len() > 50 && r.compactions >= 5, "{report}");
    assert!(
        r.relists > 0,
        "no watch met a compacted revision:\n{report}"
    );
    // The re-listed ranges are checked like any list; each watch went on after its list.
    let resource_watches = r.watched.iter().filter(|(name, _)| !name.starts_with('='));
    assert!(
        resource_watches.clone().all(|(_, e)| !e.is_empty()),
        "{report}"
    );
}

/// The figure after `label` in `text` (`label 12,` → 12).
fn figure_after(text: &str, label: &str) -> Option<usize> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn the_api_server_workload_survives_a_leader_kill_a_cut_off_watch_member_and_compaction_during_lists(
) {
    // `cairn-chaos k8s --short`: members in network namespaces (root), the workload's require-leader
    // watches all on one member, which is cut off first; then the leader killed; then compactions
    // while lists page. A seed from the environment replays a failed schedule (the output names it).
    let flavor = must(Flavor::from_env());
    let chaos = must(workspace::binary("cairn-chaos"));
    let out = must(
        tempfile::Builder::new()
            .prefix("cairn-k8s-chaos-")
            .tempdir()
            .map_err(anyhow::Error::from),
    );
    let mut cmd = std::process::Command::new(&chaos);
    cmd.args(["k8s", "--short", "--server", flavor.name(), "--out"])
        .arg(out.path())
        .arg("--binary")
        .arg(must(flavor.binary()));
    if let Ok(seed) = std::env::var("CAIRN_CHAOS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let started = Instant::now();
    let run = must(cmd.output().map_err(anyhow::Error::from));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!(
        "{flavor:?}: cairn-chaos k8s --short took {:?}\n{stdout}",
        started.elapsed()
    );
    if !run.status.success() {
        let kept = out.keep();
        panic!(
            "cairn-chaos k8s --short failed ({}); run kept in {}\n{stdout}\n{stderr}",
            run.status,
            kept.display()
        );
    }
    assert!(stdout.contains("\nviolations: 0\n"), "{stdout}");
    // The verdicts only mean something if each fault met what it is about.
    // "partition of m1: 23 require-leader watch streams open on it, 23 ended with "no leader"
    // (slowest 4.1s after the cut, limit 8s), 23 resumed on another member (slowest 4.3s)"
    let line = stdout
        .lines()
        .find(|l| l.contains("partition of m"))
        .unwrap_or_default();
    let open = figure_after(line, ":");
    let ended = figure_after(line, "open on it,");
    let resumed = figure_after(line, "s),");
    // Every watch of the short workload (3 resources, 20 single objects) was on the cut member.
    assert_eq!(open, Some(23), "{line}");
    assert_eq!(ended, open, "{line}");
    assert_eq!(resumed, open, "{line}");
    assert!(
        figure_after(&stdout, "probe lists refused as compacted:").unwrap_or(0) >= 1,
        "{stdout}"
    );
    assert!(stdout.contains("kill-leader-restart-later on "), "{stdout}");
}
