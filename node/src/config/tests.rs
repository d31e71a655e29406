//! Each refusal of `Config::validate`, with etcd's wording.
use super::*;

fn base() -> Vec<&'static str> {
    vec![
        "cairn",
        "--name=infra0",
        "--initial-cluster=infra0=http://127.0.0.1:2380,infra1=http://127.0.0.1:3380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--listen-client-urls=http://127.0.0.1:2379",
    ]
}

fn check(extra: &[&str]) -> Result<(), ConfigError> {
    let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
    let mut args: Vec<&str> = base()
        .into_iter()
        .filter(|b| !extra.iter().any(|e| flag(e) == flag(b)))
        .collect();
    args.extend_from_slice(extra);
    Config::try_parse_from(args)
        .map_err(|e| ConfigError(e.to_string()))?
        .validate()
}

#[test]
fn valid_static_config_is_accepted() {
    assert_eq!(check(&[]), Ok(()));
}

#[test]
fn zero_runtime_threads_is_refused_with_the_fix() {
    let e = check(&["--runtime-threads=0"]).unwrap_err();
    assert!(
        e.0.starts_with("--runtime-threads must be at least 1"),
        "{e}"
    );
    assert_eq!(check(&["--runtime-threads=1"]), Ok(()));
}

#[test]
fn name_missing_from_initial_cluster_is_refused() {
    let e = check(&["--name=infra9"]).unwrap_err();
    assert_eq!(e.0, "infra9 not listed in the initial cluster config");
}

#[test]
fn advertised_peer_urls_must_match_the_members_entry() {
    let e = check(&["--initial-advertise-peer-urls=http://127.0.0.1:9999"]).unwrap_err();
    assert_eq!(
        e.0,
        "infra0 has different advertised URLs in the cluster and advertised peer URLs list"
    );
}

#[test]
fn listen_url_with_hostname_is_refused() {
    let e = check(&["--listen-peer-urls=https://hketcd:2380"]).unwrap_err();
    assert_eq!(e.0, "expected IP in URL for binding (https://hketcd:2380)");
}

#[test]
fn https_without_cert_files_is_refused() {
    let e = check(&["--listen-client-urls=https://127.0.0.1:2379"]).unwrap_err();
    assert!(e.0.contains("--cert-file and --key-file"), "{}", e.0);
}

#[test]
fn cert_without_key_is_refused() {
    let e = check(&["--peer-cert-file=/x.pem"]).unwrap_err();
    assert_eq!(
        e.0,
        "--peer-cert-file and --peer-key-file must be given together"
    );
}

#[test]
fn client_cert_auth_without_ca_is_refused() {
    let e = check(&[
        "--listen-client-urls=https://127.0.0.1:2379",
        "--cert-file=/c.pem",
        "--key-file=/k.pem",
        "--client-cert-auth",
    ])
    .unwrap_err();
    assert_eq!(e.0, "--client-cert-auth requires --trusted-ca-file");
}

#[test]
fn election_timeout_must_exceed_five_heartbeats() {
    let e = check(&["--heartbeat-interval=300", "--election-timeout=1000"]).unwrap_err();
    assert!(e.0.contains("at least as 5 times"), "{}", e.0);
}

#[test]
fn bad_url_scheme_names_the_flag() {
    let e = check(&["--advertise-client-urls=ftp://127.0.0.1:1"]).unwrap_err();
    assert!(e.0.starts_with("--advertise-client-urls"), "{}", e.0);
}

#[test]
fn discovery_srv_with_initial_cluster_is_refused() {
    let e = check(&["--discovery-srv=example.com"]).unwrap_err();
    assert!(
        e.0.starts_with("--discovery-srv and --initial-cluster cannot both be set"),
        "{}",
        e.0
    );
}

#[test]
fn without_initial_cluster_the_member_lists_itself() {
    let c = Config::try_parse_from(["cairn", "--name=solo"]).unwrap();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.initial_cluster_or_default(), "solo=http://localhost:2380");
    let c = Config::try_parse_from([
        "cairn",
        "--name=solo",
        "--initial-advertise-peer-urls=http://127.0.0.1:5",
        "--listen-peer-urls=http://127.0.0.1:5",
    ])
    .unwrap();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.initial_cluster_or_default(), "solo=http://127.0.0.1:5");
}

#[test]
fn unknown_cluster_state_is_a_usage_error() {
    assert!(check(&["--initial-cluster-state=maybe"]).is_err());
}

#[test]
fn defaults_match_etcd() {
    let c = Config::try_parse_from(base()).unwrap();
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!((c.heartbeat_interval, c.election_timeout), (100, 1000));
    assert_eq!(c.initial_cluster_state, ClusterState::New);
}

#[test]
fn auto_compaction_retention_is_read_per_mode() {
    assert_eq!(check(&["--auto-compaction-retention=1h30m"]), Ok(()));
    assert_eq!(
        check(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=1000"
        ]),
        Ok(())
    );
    let e = check(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1h",
    ]);
    assert!(
        e.as_ref().is_err_and(|e| e
            .0
            .starts_with("--auto-compaction-retention: \"1h\" is not a whole number of revisions")),
        "{e:?}"
    );
    assert!(check(&["--auto-compaction-retention=1d"]).is_err());
    assert!(check(&["--auto-compaction-mode=hourly"]).is_err());
    let c = Config::try_parse_from(base()).unwrap();
    assert_eq!(c.auto_compaction(), Ok(Retention::Off));
}

#[test]
fn bcrypt_cost_outside_4_to_31_is_not_refused_and_falls_back_to_10_with_etcds_warning() {
    let cfg = |cost: &str| {
        let mut args = base();
        let flag = format!("--bcrypt-cost={cost}");
        args.push(&flag);
        let cfg = Config::try_parse_from(args).expect("parses");
        assert_eq!(cfg.validate(), Ok(()), "--bcrypt-cost={cost} refused");
        cfg.bcrypt_cost_in_use()
    };
    assert_eq!(cfg("4"), (4, None));
    assert_eq!(cfg("31"), (31, None));
    assert_eq!(
        cfg("3"),
        (
            10,
            Some("Use default bcrypt-cost 10 instead of the invalid value 3".into())
        )
    );
    assert_eq!(cfg("32").0, 10);
}
