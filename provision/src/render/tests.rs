//! Rendered content for the seeds' cluster, pinned where the exact text matters to etcd operators.

use std::path::Path;

use super::*;

fn static3() -> Spec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/static3.yaml");
    crate::spec::load(&path).expect("examples/static3.yaml is valid")
}

#[test]
fn env_file_has_every_etcd_flag_for_a_static_tls_member() {
    let s = static3();
    let got: Vec<String> = env::vars(&s, &s.nodes[0])
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let want = [
        "CAIRN_NAME=infra0",
        "CAIRN_DATA_DIR=/var/lib/cairn",
        "CAIRN_LISTEN_PEER_URLS=https://10.0.1.10:2380",
        "CAIRN_LISTEN_CLIENT_URLS=https://10.0.1.10:2379,https://127.0.0.1:2379",
        "CAIRN_INITIAL_ADVERTISE_PEER_URLS=https://10.0.1.10:2380",
        "CAIRN_ADVERTISE_CLIENT_URLS=https://10.0.1.10:2379",
        "CAIRN_INITIAL_CLUSTER_TOKEN=etcd-cluster-1",
        "CAIRN_INITIAL_CLUSTER_STATE=new",
        "CAIRN_INITIAL_CLUSTER=infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380,infra2=https://10.0.1.12:2380",
        "CAIRN_CERT_FILE=/etc/cairn/pki/server.crt",
        "CAIRN_KEY_FILE=/etc/cairn/pki/server.key",
        "CAIRN_TRUSTED_CA_FILE=/etc/cairn/pki/ca.crt",
        "CAIRN_CLIENT_CERT_AUTH=true",
        "CAIRN_PEER_CERT_FILE=/etc/cairn/pki/peer.crt",
        "CAIRN_PEER_KEY_FILE=/etc/cairn/pki/peer.key",
        "CAIRN_PEER_TRUSTED_CA_FILE=/etc/cairn/pki/ca.crt",
        "CAIRN_PEER_CLIENT_CERT_AUTH=true",
    ];
    assert_eq!(got, want);
}

#[test]
fn raft_timing_of_the_appliance_example_reaches_the_env_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/appliance.yaml");
    let s = crate::spec::load(&path).expect("examples/appliance.yaml is valid");
    let got: Vec<String> = env::vars(&s, &s.nodes[0])
        .into_iter()
        .filter(|(k, _)| k.ends_with("_INTERVAL") || k.ends_with("_TIMEOUT"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        got,
        [
            "CAIRN_HEARTBEAT_INTERVAL=2000",
            "CAIRN_ELECTION_TIMEOUT=20000"
        ]
    );
    // Without the fields nothing is written and cairn keeps its defaults.
    let s = static3();
    assert!(env::vars(&s, &s.nodes[0])
        .iter()
        .all(|(k, _)| !k.ends_with("_INTERVAL") && !k.ends_with("_TIMEOUT")));
}

#[test]
fn every_artifact_of_the_layout_is_rendered() {
    let s = static3();
    let t = Templates::load(None).expect("built-in templates parse");
    let paths: Vec<String> = render_all(&s, &t, &|_| None)
        .expect("renders")
        .into_iter()
        .map(|a| a.path.display().to_string())
        .collect();
    for want in [
        "nodes/infra0/cairn.env",
        "nodes/infra0/systemd/cairn.service",
        "nodes/infra0/rsyslog/30-cairn.conf",
        "nodes/infra0/logrotate/cairn",
        "nodes/infra2/firewall/cairn.nft",
        "dns/example.com.zone",
        "dns/nsupdate.txt",
        "monitoring/prometheus.yml",
        "monitoring/servicemonitor.yaml",
        "ansible/inventory.yml",
    ] {
        assert!(
            paths.iter().any(|p| p == want),
            "{want} missing from {paths:?}"
        );
    }
}

#[test]
fn srv_names_follow_tls_and_srv_name_suffix() {
    let mut s = static3();
    assert_eq!(dns::srv_services(&s).0, "_etcd-server-ssl");
    s.tls = None;
    if let Some(d) = &mut s.dns {
        d.srv_name = "prod".into();
    }
    assert_eq!(
        dns::srv_services(&s),
        (
            "_etcd-server-prod".to_string(),
            "_etcd-client-prod".to_string()
        )
    );
}
