//! Members in one process over real loopback sockets (one test binary): this file holds the harness
//! and the three-member forwarding, read-index, failover and restart test; the other modules cover
//! proposal batching, membership changes, DNS SRV bootstrap and mutual TLS.

mod batch;
mod membership;
mod srv;
mod tls;

use std::time::{Duration, Instant};

use clap::Parser;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use cairn_node::config::Config;
use cairn_node::member::App;
use cairn_node::mvcc::Command;
use cairn_node::server::listen;

struct Member {
    pub app: App,
    pub stop: watch::Sender<bool>,
}

fn put(key: &str) -> Command {
    let req = etcd_client::proto::PbPutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    Command::Put(req.encode_to_vec())
}

/// Start member `name` serving its peer listener `l`; `extra` adds flags (e.g. TLS).
async fn start(
    name: &str,
    cluster: &str,
    peer: &str,
    dir: &std::path::Path,
    l: TcpListener,
    extra: &[String],
) -> Member {
    let mut args = vec![
        "cairn".to_string(),
        format!("--name={name}"),
        format!("--data-dir={}", dir.join(name).display()),
        format!("--initial-cluster={cluster}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--listen-peer-urls={peer}"),
        format!("--advertise-client-urls=http://{name}.example:2379"),
        // Small, so the test also covers building, purging behind, and installing snapshots.
        "--snapshot-count=20".to_string(),
    ];
    args.extend_from_slice(extra);
    let cfg = Config::try_parse_from(args).expect("flags");
    cfg.validate().expect("valid config");
    let tls = cairn_node::server::Tls::from_config(&cfg).expect("certificates load");
    let started = App::start(&cfg, tls.peer_client_tls, None)
        .await
        .expect("member starts");
    let (stop, rx) = watch::channel(false);
    let router = cairn_node::server::peer_router(&started);
    let frames = Some(started.frame_handler());
    tokio::spawn(listen::serve(l, tls.peer_server_tls, router, frames, rx));
    Member {
        app: started.app,
        stop,
    }
}

/// `count` loopback peer listeners, their `scheme` URLs and the `--initial-cluster` naming the first
/// three `{prefix}0..2` (the others are for members added later).
async fn listeners(
    scheme: &str,
    prefix: &str,
    count: usize,
) -> (Vec<TcpListener>, Vec<String>, String) {
    let mut listeners = Vec::new();
    for _ in 0..count {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("{scheme}://{}", l.local_addr().expect("addr")))
        .collect();
    let cluster = (0..3)
        .map(|i| format!("{prefix}{i}={}", urls[i]))
        .collect::<Vec<_>>()
        .join(",");
    (listeners, urls, cluster)
}

/// Ask member `id` at `url` for a vote in term 1 (which no member grants once a leader sits) as a
/// frame call; `Ok(Ok(granted))` when it answered.
async fn frame_vote(
    peers: &cairn_node::raft::network::PeerChannels,
    id: u64,
    url: &str,
) -> Result<Result<bool, String>, cairn_node::raft::channels::FrameError> {
    let node = cairn_node::raft::types::PeerNode {
        name: String::new(),
        peer_urls: vec![url.to_string()],
    };
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(1, 99), None);
    let payload = cairn_node::codec::encode(&vote).expect("encode");
    let method = cairn_node::raft::frames::Method::Vote;
    let answer = peers
        .frame_call(id, &node, method, &payload, Duration::from_secs(5))
        .await?;
    Ok(answer.map(|bytes| {
        let resp: Result<openraft::raft::VoteResponse<u64>, openraft::error::RaftError<u64>> =
            cairn_node::codec::decode(&bytes).expect("a vote response");
        resp.expect("vote handled").vote_granted
    }))
}

async fn until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn revision(app: &App) -> i64 {
    app.store().read().revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_forward_fail_over_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (listeners, urls, cluster) = listeners("http", "m", 3).await;
    let mut members = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        members.push(Some(
            start(&format!("m{i}"), &cluster, &urls[i], dir.path(), l, &[]).await,
        ));
    }
    let app = |m: &Option<Member>| m.as_ref().expect("running").app.clone();

    let leader = until("a leader", Duration::from_secs(5), || {
        app(&members[0]).status().leader
    })
    .await;
    let follower = members
        .iter()
        .map(app)
        .find(|a| a.member_id() != leader)
        .expect("a follower");
    let before = revision(&follower);
    follower
        .propose(put("a"))
        .await
        .expect("forwarded put commits");
    assert_eq!(
        revision(&follower),
        before + 1,
        "the follower applied the write before answering"
    );
    for m in &members {
        app(m).read_barrier().await.expect("read barrier");
        assert_eq!(revision(&app(m)), before + 1);
    }
    until("all members published", Duration::from_secs(5), || {
        let names: Vec<String> = app(&members[0])
            .members()
            .into_iter()
            .map(|m| m.name)
            .collect();
        (names.iter().filter(|n| !n.is_empty()).count() == 3).then_some(())
    })
    .await;

    // Fail the leader: its peer listener stops and Raft shuts down.
    let idx = members
        .iter()
        .position(|m| app(m).member_id() == leader)
        .expect("leader index");
    let old = members[idx].take().expect("leader running");
    let old_last_index = old.app.status().raft_index;
    let _ = old.stop.send(true);
    old.app.shutdown().await;
    let t = Instant::now();
    let survivor = members
        .iter()
        .flatten()
        .next()
        .expect("survivor")
        .app
        .clone();
    let new_leader = until("a new leader", Duration::from_secs(5), || {
        survivor.status().leader.filter(|l| *l != leader)
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "new leader {new_leader:x} took {:?}",
        t.elapsed()
    );
    survivor
        .propose(put("b"))
        .await
        .expect("write after failover");
    // Enough writes while it is down that the leader snapshots and purges the log it would need.
    for i in 0..60 {
        survivor
            .propose(put(&format!("k{i}")))
            .await
            .expect("write while a member is down");
    }
    let alive = members
        .iter()
        .position(|m| m.is_some())
        .expect("survivor index");
    let snap = dir
        .path()
        .join(format!("m{alive}/member/snap/current.snap"));
    until(
        "a survivor persisted a snapshot",
        Duration::from_secs(5),
        || snap.exists().then_some(()),
    )
    .await;
    // The log the old leader needs is gone: catching up below must go through InstallSnapshot.
    until(
        "the survivors purged their logs",
        Duration::from_secs(5),
        || {
            let purged = survivor.raft().metrics().borrow().purged.map(|l| l.index);
            purged.filter(|p| *p > old_last_index)
        },
    )
    .await;

    // Restart the old leader from its data dir on the same port: it catches up.
    drop(old);
    let url = &urls[idx];
    let l = TcpListener::bind(url.trim_start_matches("http://"))
        .await
        .expect("rebind");
    let back = start(&format!("m{idx}"), &cluster, url, dir.path(), l, &[]).await;
    let want = revision(&survivor);
    until(
        "restarted member catches up",
        Duration::from_secs(10),
        || (revision(&back.app) >= want).then_some(()),
    )
    .await;
    for m in members.iter().flatten() {
        let _ = m.stop.send(true);
        m.app.shutdown().await;
    }
    let _ = back.stop.send(true);
    back.app.shutdown().await;
}
