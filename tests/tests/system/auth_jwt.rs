//! JWT auth tokens (`--auth-token jwt,...`) with keys made by `openssl`, driven by the real etcdctl
//! 3.4 and by raw gRPC calls (a token taken from one member and shown to another). etcd 3.4's JSON
//! gateway refuses calls made with a client certificate once auth is on, so it is not used here.
//! `CAIRN_TEST_FLAVOR=etcd` runs the same assertions against etcd 3.4, which is how each expected
//! text was checked.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_tests::base64::decode_str;
use cairn_tests::cluster::{Cluster, Flavor, START_TIMEOUT};
use cairn_tests::etcdctl::Output;
use cairn_tests::fixture::must;
use cairn_tests::grpc::runtime;
use cairn_tests::token_call;
use serde_json::Value;

/// The token TTL the cluster runs with: short, so the test can watch a token expire.
const TTL_SECS: u64 = 4;

fn openssl(args: &[&str]) {
    let out = must(
        Command::new("openssl")
            .args(args)
            .output()
            .map_err(Into::into),
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RSA key pair as etcd's docs make one: (private PEM, public PEM).
fn rsa_keys(dir: &Path) -> (String, String) {
    let (private, public) = (dir.join("jwt.key"), dir.join("jwt.pub"));
    let p = |p: &Path| p.display().to_string();
    openssl(&["genrsa", "-out", &p(&private), "2048"]);
    openssl(&["rsa", "-in", &p(&private), "-pubout", "-out", &p(&public)]);
    (p(&private), p(&public))
}

/// A token issued by member `i`.
fn login(c: &Cluster, i: usize, user: &str, password: &str) -> String {
    let rt = must(runtime());
    let url = &c.members[i].client_url;
    let answer = must(rt.block_on(token_call::authenticate(&c.pki, url, user, password)));
    answer.unwrap_or_else(|e| panic!("authenticate at member {i}: {e:?}"))
}

/// Put `key` through member `i` with `token`: Ok, or the refusal's text.
fn put(c: &Cluster, i: usize, token: &str, key: &str) -> Result<(), String> {
    let rt = must(runtime());
    let url = &c.members[i].client_url;
    let answer = must(rt.block_on(token_call::put(&c.pki, url, token, key)));
    answer.map_err(|e| e.message().to_string())
}

/// etcdctl as alice, through member `i`.
fn alice(c: &Cluster, i: usize, args: &[&str]) -> Output {
    let mut v = vec!["--user=alice:alicepw"];
    v.extend_from_slice(args);
    must(c.etcdctl_for(i).run(&v))
}

fn refused(answer: &Result<(), String>, text: &str) {
    assert!(
        answer.as_ref().is_err_and(|e| e.contains(text)),
        "expected a refusal saying {text:?}, got {answer:?}"
    );
}

fn failed_saying(o: &Output, text: &str) {
    assert!(
        !o.success() && o.stderr.contains(text),
        "expected a failure saying {text:?}, got {o:?}"
    );
}

/// The claims of a JWT (its middle part, base64url without padding).
fn claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    let mut b64: String = parts[1]
        .chars()
        .map(|ch| match ch {
            '-' => '+',
            '_' => '/',
            ch => ch,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    let text = must(decode_str(&b64));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// An auth change (a new auth revision): root grants app read on /shared/.
const GRANT_READ_SHARED: [&str; 7] = [
    "--user=root:rootpw",
    "role",
    "grant-permission",
    "app",
    "--prefix=true",
    "read",
    "/shared/",
];

fn jwt_arg(keys: &str) -> String {
    format!("--auth-token=jwt,{keys},sign-method=RS256,ttl={TTL_SECS}s")
}

/// A 3-member cluster signing JWTs with a fresh RSA key, with root and alice (readwrite on /app/),
/// auth enabled: the cluster and the public key's path.
fn jwt_cluster() -> (Cluster, String) {
    let flavor = must(Flavor::from_env());
    let mut c = must(Cluster::create(flavor, 3));
    let (private, public) = rsa_keys(c.dir());
    // bcrypt's lowest cost keeps logins quick on a loaded machine (debug builds, parallel tests).
    c.extra_args = vec![
        jwt_arg(&format!("pub-key={public},priv-key={private}")),
        "--bcrypt-cost=4".into(),
    ];
    must(c.start_all());
    must(c.wait_healthy(START_TIMEOUT));
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "--prefix=true",
            "readwrite",
            "/app/",
        ],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        must(c.etcdctl().ok(args));
    }
    (c, public)
}

#[test]
fn jwt_tokens_from_one_member_work_on_the_others_until_they_expire_or_auth_changes() {
    let (mut c, public) = jwt_cluster();
    let jwt = jwt_arg;

    // etcdctl logs in (a JWT) and uses its token, on any member.
    let o = alice(&c, 0, &["put", "/app/a", "1"]);
    assert!(o.success(), "{o:?}");
    let o = alice(&c, 1, &["get", "/app/a", "--print-value-only"]);
    assert_eq!(o.stdout, "1\n", "{o:?}");
    failed_saying(
        &alice(&c, 2, &["put", "/other", "1"]),
        "etcdserver: permission denied",
    );

    // A token is a JWT naming the user and the auth revision, good on every member.
    let token = login(&c, 0, "alice", "alicepw");
    let claims = claims(&token);
    assert_eq!(claims["username"], "alice", "{claims}");
    assert!(
        claims["revision"].as_u64().is_some_and(|r| r > 0),
        "{claims}"
    );
    assert!(claims["exp"].as_u64().is_some(), "{claims}");
    for i in [1, 2] {
        let answer = put(&c, i, &token, "/app/b");
        assert_eq!(answer, Ok(()), "member {i}");
    }
    refused(
        &put(&c, 1, &token, "/other"),
        "etcdserver: permission denied",
    );

    // A garbled or foreign token is invalid.
    let mut garbled = token.clone();
    let at = token.find('.').expect("a dot") + 5;
    garbled.replace_range(
        at..at + 1,
        if &token[at..at + 1] == "A" { "B" } else { "A" },
    );
    refused(
        &put(&c, 1, &garbled, "/app/c"),
        "etcdserver: invalid auth token",
    );
    refused(
        &put(&c, 1, "not.a.token", "/app/c"),
        "etcdserver: invalid auth token",
    );

    // A token expires after the TTL: accepted until then, invalid after.
    let issued = Instant::now();
    let short = login(&c, 0, "alice", "alicepw");
    assert_eq!(put(&c, 1, &short, "/app/d"), Ok(()));
    let expired = loop {
        let answer = put(&c, 1, &short, "/app/d");
        if answer.is_err() {
            break answer;
        }
        assert!(
            issued.elapsed() < Duration::from_secs(TTL_SECS + 10),
            "a {TTL_SECS}s token still works after {:?}",
            issued.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    refused(&expired, "etcdserver: invalid auth token");
    // exp is in whole seconds: the token lives between TTL-1 and TTL seconds.
    assert!(
        issued.elapsed() >= Duration::from_secs(TTL_SECS - 1),
        "expired after {:?}",
        issued.elapsed()
    );

    // Any auth change makes tokens issued before it old; clients log in again.
    let before = login(&c, 0, "alice", "alicepw");
    let grant = GRANT_READ_SHARED;
    must(c.etcdctl().ok(&grant));
    refused(
        &put(&c, 2, &before, "/app/e"),
        "etcdserver: revision of auth store is old",
    );
    let o = alice(&c, 2, &["put", "/app/e", "1"]);
    assert!(o.success(), "{o:?}");

    // A member with only the public key checks tokens but cannot issue them.
    must(c.kill_member(2));
    c.extra_args = vec![jwt(&format!("pub-key={public}")), "--bcrypt-cost=4".into()];
    must(c.start_member(2));
    must(c.wait_members_healthy(&[2], START_TIMEOUT));
    failed_saying(
        &alice(&c, 2, &["get", "/app/a"]),
        "auth: token signing attempted with verify-only key",
    );
    let fresh = login(&c, 0, "alice", "alicepw");
    assert_eq!(put(&c, 2, &fresh, "/app/f"), Ok(()));
}

/// A JWT issued after an auth change, shown at once to a follower that has not applied that change
/// yet (paused with SIGSTOP while the change commits and the call is sent): etcd trusts the revision
/// the token names and lets the write through; cairn waits until the follower caught up, so the write
/// passes too instead of being refused as "revision of auth store is old".
#[test]
fn a_jwt_issued_after_an_auth_change_works_at_once_on_a_lagging_follower() {
    let (c, _) = jwt_cluster();
    let (_, leader) = must(c.leader(&[0, 1, 2]));
    let follower = (leader + 1) % 3;
    let rt = must(runtime());
    let url = c.members[follower].client_url.clone();
    let ch = must(rt.block_on(token_call::channel(&c.pki, &url)));
    let pid = c.members[follower]
        .pid()
        .expect("follower running")
        .to_string();
    let signal = |sig: &str| {
        let out = Command::new("kill").args([sig, pid.as_str()]).output();
        assert!(
            must(out.map_err(Into::into)).status.success(),
            "kill {sig} {pid}"
        );
    };
    signal("-STOP");
    let grant = GRANT_READ_SHARED;
    let granted = c.etcdctl_for(leader).run(&grant);
    let token = login(&c, leader, "alice", "alicepw");
    let answer = rt.block_on(async {
        let call =
            tokio::spawn(async move { token_call::put_on(ch, &token, "/app/lagging").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal("-CONT");
        call.await
    });
    signal("-CONT");
    let granted = must(granted);
    assert!(granted.success(), "{granted:?}");
    let answer = must(must(answer.map_err(Into::into)));
    assert_eq!(answer.map_err(|e| e.message().to_string()), Ok(()));
}
