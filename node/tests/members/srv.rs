//! DNS SRV bootstrap against a real BIND `named` on loopback: three members find each other from the
//! records alone (dialling each other by SRV target name through `--dns-server`), and the refusals
//! (member not among the targets, no records) read clearly.

use std::path::Path;
use std::process::{Child, Command as Process};
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{put, until};
use cairn_node::bootstrap::srv;
use cairn_node::config::Config;
use cairn_node::dns::Dns;
use cairn_node::member::App;
use cairn_node::server::listen;

struct Named(Child);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serve zone `example.test` with SRV records for `ports` (targets m<i>.example.test → 127.0.0.1).
async fn named(dir: &Path, ports: &[u16]) -> (Named, u16) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("udp")
        .local_addr()
        .expect("addr")
        .port();
    let d = dir.display();
    let conf = format!(
        "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
         pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\"; recursion no; dnssec-validation no; }};
         controls {{ }};
         zone \"example.test\" {{ type master; file \"{d}/zone\"; }};\n"
    );
    let mut zone = String::from(
        "$TTL 60\n@ IN SOA ns.example.test. admin.example.test. 1 60 60 60 60\n@ IN NS ns.example.test.\n\
         ns IN A 127.0.0.1\n",
    );
    for (i, p) in ports.iter().enumerate() {
        zone +=
            &format!("_etcd-server._tcp IN SRV 0 0 {p} m{i}.example.test.\nm{i} IN A 127.0.0.1\n");
    }
    std::fs::write(dir.join("named.conf"), conf).expect("named.conf");
    std::fs::write(dir.join("zone"), zone).expect("zone");
    let child = Process::new("named")
        .args(["-g", "-c"])
        .arg(dir.join("named.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("named (Debian package bind9) runs");
    let named = Named(child);
    let dns = Dns::new(Some(([127, 0, 0, 1], port).into())).expect("resolver");
    let mut ready = false;
    for _ in 0..100 {
        if dns.lookup_ip("m0.example.test").await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "named answers");
    (named, port)
}

fn config(name: &str, peer: &str, dns_port: u16, dir: &Path, domain: &str) -> Config {
    Config::try_parse_from([
        "cairn".to_string(),
        format!("--name={name}"),
        format!("--data-dir={}", dir.join(name).display()),
        format!("--discovery-srv={domain}"),
        format!("--dns-server=127.0.0.1:{dns_port}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--listen-peer-urls={peer}"),
    ])
    .expect("flags")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_bootstrap_from_srv_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let (_named, dns_port) = named(dir.path(), &ports).await;
    let dns = Dns::new(Some(([127, 0, 0, 1], dns_port).into())).expect("resolver");

    // Refusals first: a member whose address is not a target, and a domain without records.
    let stranger = config(
        "x",
        "http://127.0.0.1:9",
        dns_port,
        dir.path(),
        "example.test",
    );
    let e = srv::initial_cluster(&stranger, &dns)
        .await
        .expect_err("not a target")
        .to_string();
    assert!(
        e.contains("is not among the SRV targets of example.test"),
        "{e}"
    );
    let empty = config(
        "x",
        "http://127.0.0.1:9",
        dns_port,
        dir.path(),
        "nothing.example.test",
    );
    let e = srv::initial_cluster(&empty, &dns)
        .await
        .expect_err("no records")
        .to_string();
    assert!(e.contains("no SRV records found"), "{e}");

    let mut apps = Vec::new();
    let mut stops = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let peer = format!("http://127.0.0.1:{}", ports[i]);
        let mut cfg = config(
            &format!("s{i}"),
            &peer,
            dns_port,
            dir.path(),
            "example.test",
        );
        cfg.validate().expect("valid");
        let cluster = srv::initial_cluster(&cfg, &dns)
            .await
            .expect("bootstrap from DNS");
        assert!(
            cluster.contains(&format!("s{i}=http://m{i}.example.test:{}", ports[i])),
            "{cluster}"
        );
        cfg.initial_cluster = Some(cluster);
        let started = App::start(&cfg, None, Some(dns.clone()))
            .await
            .expect("start");
        let (stop, rx) = watch::channel(false);
        tokio::spawn(listen::serve(
            l,
            None,
            cairn_node::server::peer_router(&started),
            Some(started.frame_handler()),
            rx,
        ));
        apps.push(started.app);
        stops.push(stop);
    }
    let ids: std::collections::BTreeSet<u64> = apps.iter().map(|a| a.status().cluster_id).collect();
    assert_eq!(ids.len(), 1, "every member derived the same cluster ID");
    until("a leader", Duration::from_secs(5), || {
        apps[0].status().leader
    })
    .await;
    apps[2]
        .propose(put("srv"))
        .await
        .expect("write through a follower");
    for (a, s) in apps.iter().zip(&stops) {
        let _ = s.send(true);
        a.shutdown().await;
    }
}
