//! etcd's JSON gateway driven by `curl` only, over the cluster's mutual TLS, as the etcd docs' examples
//! and `curl` scripts use it. `CAIRN_TEST_FLAVOR=etcd` runs the same assertions against etcd 3.4, which
//! is how each expectation was checked.

use cairn_tests::base64::{decode_str, encode};
use cairn_tests::cluster::Cluster;
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::https::{get, post, post_stream};
use serde_json::{json, Value};

/// POST `body` to `/v3/<path>` of member 0; the HTTP status and the parsed JSON answer.
fn call(c: &Cluster, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/v3/{path}", c.members[0].client_url);
    let (status, text) = must(post(&c.pki, &url, &body.to_string(), &[]));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text:?}"));
    (status, v)
}

/// A successful call's answer.
fn ok(c: &Cluster, path: &str, body: Value) -> Value {
    let (status, v) = call(c, path, body);
    assert_eq!(status, 200, "/v3/{path}: {v}");
    v
}

/// A 64-bit field (int64 or uint64), which the gateway writes as a JSON string.
fn int64(v: &Value) -> i128 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("64-bit integer not a string: {v}"));
    s.parse()
        .unwrap_or_else(|e| panic!("64-bit integer {s:?}: {e}"))
}

/// The `{"result": ...}` objects of a streamed answer, one per line.
fn results(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
            v.get("result")
                .cloned()
                .unwrap_or_else(|| panic!("stream line without result: {l}"))
        })
        .collect()
}

#[test]
fn the_json_gateway_serves_kv_lease_watch_cluster_and_maintenance_like_etcd() {
    let c = cluster();
    let url = c.members[0].client_url.clone();

    // /version parses as a plain etcd version (clients split it on dots).
    let (status, text) = must(get(&c.pki, &format!("{url}/version")));
    assert_eq!(status, 200, "{text}");
    let version: Value = must(serde_json::from_str(&text).map_err(Into::into));
    let server = version["etcdserver"].as_str().unwrap_or_default();
    let parts: Vec<&str> = server.split('.').collect();
    assert!(
        parts.len() == 3 && parts[..2] == ["3", "4"] && parts[2].parse::<u32>().is_ok(),
        "etcdserver {server:?} in {text}"
    );
    assert_eq!(version["etcdcluster"], "3.4.0", "{text}");

    // Put: proto field names, 64-bit integers as strings.
    let put = ok(
        &c,
        "kv/put",
        json!({"key": encode(b"gw/a"), "value": encode(b"1")}),
    );
    let rev_a = int64(&put["header"]["revision"]);
    assert!(int64(&put["header"]["raft_term"]) >= 1, "{put}");
    assert!(put["header"]["cluster_id"].is_string(), "{put}");
    ok(
        &c,
        "kv/put",
        json!({"key": encode(b"gw/b"), "value": encode(b"2")}),
    );
    ok(
        &c,
        "kv/put",
        json!({"key": encode(b"other"), "value": encode(b"3")}),
    );

    // Range over a prefix, and the lowerCamel spelling of fields; zero values are left out.
    let range = ok(
        &c,
        "kv/range",
        json!({"key": encode(b"gw/"), "range_end": encode(b"gw0")}),
    );
    assert_eq!(int64(&range["count"]), 2, "{range}");
    let kvs = range["kvs"].as_array().cloned().unwrap_or_default();
    let pairs: Vec<(String, String)> = kvs
        .iter()
        .map(|kv| {
            (
                must(decode_str(kv["key"].as_str().unwrap_or_default())),
                must(decode_str(kv["value"].as_str().unwrap_or_default())),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [("gw/a".into(), "1".into()), ("gw/b".into(), "2".into())]
    );
    assert_eq!(int64(&kvs[0]["create_revision"]), rev_a, "{range}");
    assert_eq!(int64(&kvs[0]["version"]), 1, "{range}");
    assert!(kvs[0].get("lease").is_none(), "zero lease written: {range}");
    assert!(range.get("more").is_none(), "false written: {range}");
    let keys = ok(
        &c,
        "kv/range",
        json!({"key": encode(b"gw/"), "rangeEnd": encode(b"gw0"), "keysOnly": true, "limit": 1}),
    );
    assert_eq!(keys["kvs"].as_array().map(Vec::len), Some(1), "{keys}");
    assert!(keys["kvs"][0].get("value").is_none(), "{keys}");
    assert_eq!(keys["more"], true, "{keys}");

    // Watch: a stream of {"result": ...} lines, history replayed from a revision; the stream stays open.
    let (status, text) = must(post_stream(
        &c.pki,
        &format!("{url}/v3/watch"),
        &json!({"create_request": {"key": encode(b"gw/a"), "start_revision": rev_a.to_string()}})
            .to_string(),
        3,
    ));
    assert_eq!(status, 200, "{text}");
    let watch = results(&text);
    assert_eq!(
        watch.first().map(|r| &r["created"]),
        Some(&json!(true)),
        "{text}"
    );
    let events: Vec<&Value> = watch
        .iter()
        .filter_map(|r| r["events"].as_array())
        .flatten()
        .collect();
    assert_eq!(events.len(), 1, "{text}");
    assert_eq!(events[0]["kv"]["key"], encode(b"gw/a"), "{text}");
    assert_eq!(int64(&events[0]["kv"]["mod_revision"]), rev_a, "{text}");
    assert!(
        events[0].get("type").is_none(),
        "PUT is the zero enum: {text}"
    );

    // Txn: compares and ops by their proto names, enums by name.
    let txn = ok(
        &c,
        "kv/txn",
        json!({
            "compare": [{"key": encode(b"gw/a"), "result": "EQUAL", "target": "VALUE", "value": encode(b"1")}],
            "success": [{"request_put": {"key": encode(b"gw/a"), "value": encode(b"11")}}],
            "failure": [{"request_range": {"key": encode(b"gw/a")}}],
        }),
    );
    assert_eq!(txn["succeeded"], true, "{txn}");
    assert!(
        txn["responses"][0]["response_put"]["header"].is_object(),
        "{txn}"
    );
    let txn = ok(
        &c,
        "kv/txn",
        json!({
            "compare": [{"key": encode(b"gw/a"), "result": "EQUAL", "target": "VALUE", "value": encode(b"1")}],
            "failure": [{"request_range": {"key": encode(b"gw/a")}}],
        }),
    );
    assert!(txn.get("succeeded").is_none(), "false written: {txn}");
    assert_eq!(
        txn["responses"][0]["response_range"]["kvs"][0]["value"],
        encode(b"11"),
        "{txn}"
    );

    // Lease: grant, keep-alive stream (one answer per request object; the stream ends with the body),
    // time-to-live with keys.
    let grant = ok(&c, "lease/grant", json!({"TTL": 60}));
    let id = grant["ID"].as_str().unwrap_or_default().to_string();
    assert!(
        int64(&grant["ID"]) != 0 && int64(&grant["TTL"]) == 60,
        "{grant}"
    );
    ok(
        &c,
        "kv/put",
        json!({"key": encode(b"gw/leased"), "value": encode(b"x"), "lease": id}),
    );
    let (status, text) = must(post_stream(
        &c.pki,
        &format!("{url}/v3/lease/keepalive"),
        &format!("{} {}", json!({"ID": id}), json!({"ID": id})),
        10,
    ));
    assert_eq!(status, 200, "{text}");
    let alive = results(&text);
    assert_eq!(alive.len(), 2, "{text}");
    for a in &alive {
        assert_eq!(a["ID"], id, "{text}");
        assert_eq!(int64(&a["TTL"]), 60, "{text}");
    }
    let ttl = ok(&c, "lease/timetolive", json!({"ID": id, "keys": true}));
    assert_eq!(ttl["grantedTTL"], "60", "{ttl}");
    assert_eq!(ttl["keys"], json!([encode(b"gw/leased")]), "{ttl}");
    ok(&c, "lease/revoke", json!({"ID": id}));
    let gone = ok(&c, "kv/range", json!({"key": encode(b"gw/leased")}));
    assert!(gone.get("kvs").is_none(), "{gone}");

    // Cluster and maintenance.
    let members = ok(&c, "cluster/member/list", json!({}));
    let list = members["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 3, "{members}");
    for m in &list {
        assert!(m["ID"].is_string() && m["name"].is_string(), "{members}");
        assert!(m["clientURLs"][0]
            .as_str()
            .is_some_and(|u| u.starts_with("https://")));
    }
    let st = ok(&c, "maintenance/status", json!({}));
    assert!(int64(&st["leader"]) != 0, "{st}");
    assert!(int64(&st["dbSize"]) > 0, "{st}");
    assert!(
        st["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.4.")),
        "{st}"
    );

    // The /v3beta/ alias of etcd 3.4.
    let beta = format!("{url}/v3beta/kv/range");
    let (status, text) = must(post(
        &c.pki,
        &beta,
        &json!({"key": encode(b"gw/b")}).to_string(),
        &[],
    ));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&encode(b"2")), "{text}");
}

#[test]
fn gateway_errors_carry_the_grpc_code_and_unknown_paths_answer_404() {
    let c = cluster();
    let url = c.members[0].client_url.clone();

    // A gRPC error: grpc-gateway's body and the HTTP status mapped from the code.
    let (status, err) = call(&c, "kv/compaction", json!({"revision": "1000000"}));
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], 11, "{err}");
    assert_eq!(
        err["error"], "etcdserver: mvcc: required revision is a future revision",
        "{err}"
    );
    assert_eq!(err["message"], err["error"], "{err}");
    let (status, err) = call(
        &c,
        "kv/range",
        json!({"key": encode(b"a"), "revision": "1000000"}),
    );
    assert_eq!((status, &err["code"]), (400, &json!(11)), "{err}");

    // A body that does not decode: InvalidArgument before any call.
    for bad in ["not json", r#"{"key": "@@not base64"}"#] {
        let (status, text) = must(post(&c.pki, &format!("{url}/v3/kv/put"), bad, &[]));
        assert_eq!(status, 400, "{bad}: {text}");
        let v: Value = must(serde_json::from_str(&text).map_err(Into::into));
        assert_eq!(v["code"], 3, "{bad}: {text}");
    }

    // Unknown paths and methods, as etcd 3.4 answers them (3.4 serves no /v3alpha/).
    for (path, want) in [
        ("/v3/kv/nope", 404),
        ("/v3alpha/kv/range", 404),
        ("/nope", 404),
    ] {
        let (status, text) = must(post(&c.pki, &format!("{url}{path}"), "{}", &[]));
        assert_eq!(status, want, "{path}: {text}");
    }
    let (status, text) = must(get(&c.pki, &format!("{url}/v3/kv/range")));
    assert_eq!(status, 405, "{text}");
}
