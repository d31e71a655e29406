//! Differences the published etcd client suites found (scripts/compat.sh), each fixed in cairn and
//! checked here with the same assertions against cairn and, with `CAIRN_TEST_FLAVOR=etcd`, etcd 3.4.

use cairn_tests::cluster::Cluster;
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::https::get;

/// `grpc_server_handled_total` of `service`/`method` with status `code` on member 0 (0 while absent).
fn handled(c: &Cluster, service: &str, method: &str, code: &str) -> u64 {
    let url = format!("{}/metrics", c.members[0].client_url);
    let (status, text) = must(get(&c.pki, &url));
    assert_eq!(status, 200, "{url}: {text}");
    let labels = [
        format!("grpc_code=\"{code}\""),
        format!("grpc_method=\"{method}\""),
        format!("grpc_service=\"{service}\""),
    ];
    text.lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Member 0's `grpc_server_*` lines, for failure messages.
fn grpc_lines(c: &Cluster) -> String {
    let url = format!("{}/metrics", c.members[0].client_url);
    let (_, text) = must(get(&c.pki, &url));
    text.lines()
        .filter(|l| l.starts_with("grpc_server_") && !l.ends_with(" 0"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// etcd-client's `test_auth_refresh_token_once_for_concurrent_calls` counts Authenticate calls handled OK
/// on /metrics; cairn had no gRPC server counters.
#[test]
fn grpc_server_handled_total_counts_each_call_by_method_and_status_code() {
    let c = cluster();
    let etcdctl = c.etcdctl_for(0);
    let before = handled(&c, "etcdserverpb.KV", "Range", "OK");
    for _ in 0..3 {
        must(etcdctl.ok(&["get", "compat/k"]));
    }
    let after = handled(&c, "etcdserverpb.KV", "Range", "OK");
    assert_eq!(
        after - before,
        3,
        "three etcdctl get, three Range calls handled OK; member 0's counters: {}",
        grpc_lines(&c)
    );

    // With auth off, etcdctl --user fails at Authenticate with "authentication is not enabled".
    let before = handled(
        &c,
        "etcdserverpb.Auth",
        "Authenticate",
        "FailedPrecondition",
    );
    // (etcd 3.4's etcdctl then goes on without a token; the refusal is still counted under its code.)
    let out = must(etcdctl.run(&["--user", "root:x", "get", "compat/k"]));
    assert!(
        handled(
            &c,
            "etcdserverpb.Auth",
            "Authenticate",
            "FailedPrecondition"
        ) > before,
        "the refused Authenticate is counted under its code; etcdctl: {}",
        out.stderr
    );
}
