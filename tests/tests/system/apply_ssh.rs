//! `provision apply` over real SSH, as a sudo user, into Debian host containers running systemd
//! (tests/src/hosts.rs).

use std::io::Write;

use anyhow::Result;
use cairn_tests::apply::{admin_etcdctl, provision};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::hosts::{HostSet, OPERATOR};
use cairn_tests::workspace;
use cairn_tests::writer::{missing, SeqWriter};

/// cluster.yaml for host containers `hosts`, reached as `operator` (sudo) with the host set's key.
fn ssh_spec(set: &HostSet, hosts: &[&str]) -> Result<String> {
    let first = set.host(hosts[0])?.address.octets();
    // This machine reaches the containers from the network's gateway (.1): the only client source.
    let gateway = format!("{}.{}.{}.1", first[0], first[1], first[2]);
    let mut text = format!(
        "cluster:\n  name: e2e\n  transport: ssh\ntls:\n  enabled: true\nfirewall:\n  backend: nftables\n  \
         client_sources: [{gateway}/32]\nlogging: {{ file: /var/log/cairn/cairn.log }}\n\
         apply: {{ known_hosts: {kh}, health_timeout_seconds: 90 }}\nnodes:\n",
        kh = set.scratch().join("known_hosts").display()
    );
    for h in hosts {
        let host = set.host(h)?;
        text.push_str(&format!(
            "  - {{ name: {h}, address: {}, ssh: {{ user: {OPERATOR}, key: {} }} }}\n",
            host.address,
            set.ssh_key().display()
        ));
    }
    Ok(text)
}

pub(crate) fn write_spec(set: &HostSet, hosts: &[&str]) -> Result<String> {
    let path = set.scratch().join("cluster.yaml");
    std::fs::write(&path, ssh_spec(set, hosts)?)?;
    Ok(path.display().to_string())
}

pub(crate) fn ssh_etcdctl(set: &HostSet, hosts: &[&str]) -> Result<Etcdctl> {
    let eps: Vec<String> = hosts
        .iter()
        .map(|h| Ok(format!("https://{}:2379", set.host(h)?.address)))
        .collect::<Result<_>>()?;
    Ok(admin_etcdctl(&set.scratch().join("out"), eps.join(",")))
}

/// Member names as `etcdctl member list` reports them.
fn member_names(ctl: &Etcdctl) -> Result<Vec<String>> {
    let v = ctl.json(&["member", "list", "-w", "json"])?;
    let mut names: Vec<String> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Ok(names)
}

/// Whether `from` can open a TCP connection to `to`:`port` (nc inside the container).
fn reaches(set: &HostSet, from: &str, to: &str, port: u16) -> Result<bool> {
    let to = set.host(to)?.address;
    let out = set.exec(
        set.host(from)?,
        &format!("nc -z -w 3 {to} {port} && echo open || echo closed"),
    )?;
    Ok(out.trim() == "open")
}

/// Over real SSH as a sudo user into systemd host containers: a healthy TLS cluster with active units,
/// rsyslog routing, nftables rules; no-change re-apply; grow 3 → 5; shrink 5 → 3; a binary change rolled
/// through with a writer running and no acknowledged write lost; reset leaves nothing behind.
#[test]
fn ssh_apply_installs_grows_shrinks_and_rolls_a_cluster_of_systemd_hosts() -> Result<()> {
    let mut set = HostSet::start("apply-e2e", &["h1", "h2", "h3", "h4", "h5"])?;
    let scratch = set.scratch().to_path_buf();
    let out = scratch.join("out");
    let out_s = out.display().to_string();
    let three = ["h1", "h2", "h3"];
    let spec = write_spec(&set, &three)?;
    // The debug build is ~200 MB, mostly debug info; a stripped copy uploads ~6x faster.
    let stripped = scratch.join("cairn");
    cairn_tests::tools::run_ok(
        std::process::Command::new(cairn_tests::tools::require("strip", "binutils")?)
            .arg("-o")
            .arg(&stripped)
            .arg(workspace::binary("cairn")?),
    )?;
    let bin = stripped.display().to_string();
    let apply = |spec: &str, bin: &str| {
        provision(&scratch, &["apply", spec, "-o", &out_s, "--binary", bin])
    };

    let first = apply(&spec, &bin)?.ok()?;
    eprintln!("{}", first.text);
    eprintln!("ssh apply of 3 hosts: healthy after {:.1} s", first.secs);
    assert!(first.text.contains("healthy 3/3"), "{}", first.text);
    assert!(
        first.text.contains("(sudo)"),
        "apply logs in as operator: {}",
        first.text
    );

    let ctl = ssh_etcdctl(&set, &three)?;
    ctl.ok(&["put", "k0", "v0"])?;
    assert_eq!(ctl.ok(&["get", "k0", "--print-value-only"])?.trim(), "v0");
    assert_eq!(member_names(&ctl)?, ["h1", "h2", "h3"]);
    for h in three {
        let host = set.host(h)?;
        let active = set.exec(
            host,
            "systemctl is-active cairn.service cairn-firewall.service || true",
        )?;
        assert_eq!(
            active.split_whitespace().collect::<Vec<_>>(),
            ["active", "active"],
            "{h}: {active}"
        );
        let perms = set.exec(host, "stat -c '%U %a' /etc/cairn/pki/server.key")?;
        assert_eq!(perms.trim(), "cairn 600", "{h}: server key owner and mode");
    }
    // rsyslog routes cairn's lines (SyslogIdentifier=cairn) to the configured file.
    let h1 = set.host("h1")?.clone();
    cairn_tests::wait::wait_for(
        "a cairn line in /var/log/cairn/cairn.log",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(500),
        || match set.exec(&h1, "grep -c 'cairn' /var/log/cairn/cairn.log || true") {
            Ok(n) if n.trim().parse::<u32>().unwrap_or(0) > 0 => Ok(()),
            Ok(n) => Err(format!("{} lines", n.trim())),
            Err(e) => Err(format!("{e:#}")),
        },
    )?;
    // nftables: the peer port answers members only; h4 is not a member yet.
    assert!(
        reaches(&set, "h2", "h1", 2380)?,
        "a member reaches h1's peer port"
    );
    assert!(
        !reaches(&set, "h4", "h1", 2380)?,
        "a non-member must not reach h1's peer port"
    );
    assert!(
        !reaches(&set, "h4", "h1", 2379)?,
        "a non-member must not reach h1's client port"
    );

    let again = apply(&spec, &bin)?.ok()?;
    assert!(again.text.contains("no changes"), "{}", again.text);

    // Grow 3 → 5: h4, then h5, each joins as a learner and is promoted before the next.
    let five = ["h1", "h2", "h3", "h4", "h5"];
    let spec = write_spec(&set, &five)?;
    let grow = apply(&spec, &bin)?.ok()?;
    eprintln!("{}", grow.text);
    assert!(grow.text.contains("add h4 as learner"), "{}", grow.text);
    assert!(grow.text.contains("add h5 as learner"), "{}", grow.text);
    assert!(grow.text.contains("healthy 5/5"), "{}", grow.text);
    assert!(
        !grow.text.contains("restart h1"),
        "growing restarts nobody: {}",
        grow.text
    );
    assert_eq!(member_names(&ctl)?, ["h1", "h2", "h3", "h4", "h5"]);
    assert!(
        reaches(&set, "h4", "h1", 2380)?,
        "after the grow h4 is a member and reaches h1's peer port"
    );

    // Shrink 5 → 3: h1 and h5 leave; each is removed, stopped and disabled, its data kept.
    let rest = ["h2", "h3", "h4"];
    let spec = write_spec(&set, &rest)?;
    let shrink = apply(&spec, &bin)?.ok()?;
    eprintln!("{}", shrink.text);
    assert!(shrink.text.contains("remove h1"), "{}", shrink.text);
    assert!(shrink.text.contains("remove h5"), "{}", shrink.text);
    let ctl = ssh_etcdctl(&set, &rest)?;
    assert_eq!(member_names(&ctl)?, ["h2", "h3", "h4"]);
    let h1_state = set.exec(&h1, "systemctl is-active cairn.service || true; systemctl is-enabled cairn.service || true; test -f /var/lib/cairn/member/raft.redb && echo data")?;
    assert_eq!(
        h1_state.split_whitespace().collect::<Vec<_>>(),
        ["inactive", "disabled", "data"]
    );
    set.remove("h1")?;
    set.remove("h5")?;

    // A new binary rolls through one member at a time while a writer keeps writing.
    let changed = scratch.join("cairn-changed");
    std::fs::copy(&stripped, &changed)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&changed)?
        .write_all(b"\nanother build\n")?;
    let changed_bin = changed.display().to_string();
    let writer = SeqWriter::start(ctl.clone(), "roll-");
    let roll = apply(&spec, &changed_bin)?.ok()?;
    let acked = writer.finish();
    eprintln!("{}", roll.text);
    eprintln!(
        "rolling binary change: {:.1} s, {} writes acknowledged during it",
        roll.secs,
        acked.len()
    );
    for h in rest {
        assert!(
            roll.text.contains(&format!("[{h}] restart cairn")),
            "{h} restarted: {}",
            roll.text
        );
    }
    assert!(
        acked.len() > 5,
        "the writer got writes through during the roll: {}",
        acked.len()
    );
    let lost = missing(&ctl, "roll-", &acked)?;
    assert!(
        lost.is_empty(),
        "acknowledged writes lost during the roll: {lost:?}"
    );
    let final_apply = apply(&spec, &changed_bin)?.ok()?;
    assert!(
        final_apply.text.contains("no changes"),
        "{}",
        final_apply.text
    );

    // reset leaves no unit, config, firewall table, binary or data behind.
    provision(
        &scratch,
        &["reset", &spec, "-o", &out_s, "--yes", "--binary", &bin],
    )?
    .ok()?;
    for h in rest {
        let left = set.exec(
            set.host(h)?,
            "systemctl is-active cairn.service || true; \
             for f in /etc/cairn /etc/systemd/system/cairn.service /usr/local/bin/cairn /var/lib/cairn \
             /etc/rsyslog.d/30-cairn.conf; do [ -e $f ] && echo left $f; done; \
             nft list table inet cairn >/dev/null 2>&1 && echo left table; true",
        )?;
        assert_eq!(left.trim(), "inactive", "{h} after reset: {left}");
    }
    Ok(())
}
