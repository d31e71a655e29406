//! examples/dualstack.yaml as an operator deploys it (issue 19, item 7): rendered by `provision render`,
//! each member in a network namespace of its own holding exactly the addresses the file gives it (m2 has
//! only IPv6, so between m2 and the others there is only IPv6), the rendered nftables rules loaded in
//! every member, each member started from its env file alone; the real etcdctl 3.4 sees a healthy
//! three-member cluster.

use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::netns::Lan;
use cairn_tests::tools::{require, run_ok};
use cairn_tests::wait::wait_for;
use cairn_tests::{provision, workspace};

/// The members of examples/dualstack.yaml and their addresses (with prefix lengths).
const MEMBERS: [(&str, &[&str]); 3] = [
    ("m0", &["fd00:3::10/64", "10.0.3.10/24"]),
    ("m1", &["fd00:3::11/64", "10.0.3.11/24"]),
    ("m2", &["fd00:3::12/64"]),
];

/// cairn processes, killed on drop (also when the test fails).
struct Members(Vec<Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A LAN of namespaces (`cp-ds<pid>-…`, tests/src/netns.rs): a hub with the clients' addresses and one
/// namespace per member with exactly the addresses the example gives it; removed on drop.
fn lan() -> Result<Lan> {
    let mut lan = Lan::create(&format!("cp-ds{}", std::process::id()), "10.0.3.1")?;
    // The hub is a client: etcdctl runs there, from addresses inside client_sources.
    lan.hub
        .ip(&["addr", "add", "fd00:3::1/64", "dev", "br0", "nodad"])?;
    for (i, (name, addrs)) in MEMBERS.iter().enumerate() {
        // Lan gives each host an IPv4 address on the /24: the member's own, or a placeholder for the
        // IPv6-only one, removed below.
        let v4 = addrs
            .iter()
            .find(|a| !a.contains(':'))
            .map(|a| a.trim_end_matches("/24").to_string())
            .unwrap_or_else(|| format!("10.0.3.{}", 200 + i));
        let host = lan.add_host(name, &v4)?;
        if !addrs.iter().any(|a| !a.contains(':')) {
            host.ip(&["addr", "del", &format!("{v4}/24"), "dev", "eth0"])?;
        }
        for a in addrs.iter().filter(|a| a.contains(':')) {
            // No duplicate address detection: the address is usable at once (no one else has it).
            host.ip(&["addr", "add", a, "dev", "eth0", "nodad"])?;
        }
    }
    Ok(lan)
}

#[test]
fn dualstack_example_forms_a_healthy_cluster_where_one_member_has_only_ipv6() -> Result<()> {
    require("nft", "nftables")?;
    let etcdctl = require("etcdctl", "etcd-client")?;
    let cairn = workspace::binary("cairn")?;
    let dir = tempfile::tempdir()?;
    // The example as it is, with config and data dirs in this test's directory instead of /etc and /var.
    let text = std::fs::read_to_string(provision::example("dualstack"))?.replace(
        "  bootstrap: static\n",
        &format!(
            "  bootstrap: static\n  config_dir: {d}/out/nodes/{{name}}\n  data_dir: {d}/data/{{name}}\n",
            d = dir.path().display()
        ),
    );
    ensure!(
        text.contains("config_dir:"),
        "examples/dualstack.yaml changed shape"
    );
    let file = dir.path().join("dualstack.yaml");
    std::fs::write(&file, text)?;
    let out = dir.path().join("out");
    provision::render(&file, &out, &[])?;

    let net = lan()?;
    let m2_v4 = net.hosts()[2].ip(&["-4", "addr", "show", "dev", "eth0"])?;
    ensure!(
        !m2_v4.contains("inet "),
        "m2 must have no IPv4 address:\n{m2_v4}"
    );
    let mut members = Members(Vec::new());
    for ((name, _), host) in MEMBERS.iter().zip(net.hosts()) {
        let node = out.join("nodes").join(name);
        // The member's own firewall: peers are let in by the addresses the render put there.
        run_ok(
            host.command("nft")
                .arg("-f")
                .arg(node.join("firewall/cairn.nft")),
        )
        .with_context(|| format!("loading {name}'s nftables rules"))?;
        let env = provision::env_file(&node.join("cairn.env"))?;
        let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
        members.0.push(
            host.command(&cairn)
                .env_clear()
                .envs(env)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {name}"))?,
        );
    }

    let pki = out.join("pki");
    let ctl = Etcdctl {
        endpoints: "https://[fd00:3::10]:2379,https://10.0.3.11:2379,https://[fd00:3::12]:2379"
            .into(),
        cacert: Some(pki.join("ca.crt")),
        cert: Some((pki.join("clients/admin.crt"), pki.join("clients/admin.key"))),
    };
    let in_hub = |args: &[&str]| -> Result<(bool, String)> {
        let o = net
            .hub
            .command(&etcdctl)
            .env("ETCDCTL_API", "3")
            .args(ctl.argv(args))
            .output()?;
        Ok((
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ))
    };
    let logs = || {
        MEMBERS
            .iter()
            .map(|(n, _)| {
                let text = std::fs::read_to_string(dir.path().join(format!("{n}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(8).collect();
                format!(
                    "--- {n}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_for(
        "every member healthy",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let (ok, text) = in_hub(&["endpoint", "health"]).map_err(|e| format!("{e:#}"))?;
            if ok && text.matches("is healthy").count() == 3 {
                Ok(())
            } else {
                Err(text)
            }
        },
    )
    .with_context(logs)?;
    let (ok, said) = in_hub(&["put", "family", "ipv6"])?;
    ensure!(ok, "put: {said}");
    let (ok, list) = in_hub(&["member", "list"])?;
    ensure!(ok, "member list: {list}");
    for (name, addrs) in MEMBERS {
        let v6 = addrs[0].trim_end_matches("/64");
        ensure!(
            list.contains(&format!(", {name}, https://[{v6}]:2380,")),
            "{name} is not a started member with its IPv6 peer URL:\n{list}"
        );
    }
    // m2 answers a linearizable read with the value written through the others.
    let only_m2 = ctl.with_endpoints("https://[fd00:3::12]:2379");
    let o = net
        .hub
        .command(&etcdctl)
        .env("ETCDCTL_API", "3")
        .args(only_m2.argv(&["get", "family", "--print-value-only"]))
        .output()?;
    let got = String::from_utf8_lossy(&o.stdout);
    ensure!(
        got.trim() == "ipv6",
        "m2 read {got:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(members);
    Ok(())
}
