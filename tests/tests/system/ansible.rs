//! The Ansible role run as an operator runs it: over SSH as `operator` with become, against three Debian host
//! containers (systemd, sshd, rsyslog, nftables), with the inventory `provision render` writes. `--check`
//! first (nothing installed), then for real twice (the second run changes nothing), then a changed file on
//! every member is rolled out one member at a time while the cluster stays healthy.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::hosts::{HostSet, OPERATOR};
use cairn_tests::tools::{output, require};
use cairn_tests::writer::{missing, SeqWriter};
use cairn_tests::{provision, release, tools, workspace};

const MEMBERS: [&str; 3] = ["infra0", "infra1", "infra2"];

/// `ansible-playbook` with the rendered inventory; returns its output, failing unless it exits 0.
fn playbook(out: &Path, binary: &Path, extra: &[&str]) -> Result<String> {
    let tool = require("ansible-playbook", "ansible-core")?;
    let o = output(
        Command::new(tool)
            .arg("-i")
            .arg(out.join("ansible/inventory.yml"))
            .arg(workspace::root().join("ansible/playbook.yml"))
            .arg("-e")
            .arg(format!("cairn_render_dir={}", out.display()))
            .arg("-e")
            .arg(format!("cairn_binary={}", binary.display()))
            // Debian's interpreter has Ansible's modules (a pyenv python3 on PATH may not).
            .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
            .args(extra)
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_NOCOLOR", "1")
            // One SSH connection per host for the whole run, modules piped to sudo'd python.
            .env(
                "ANSIBLE_SSH_ARGS",
                "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
            )
            .env("ANSIBLE_PIPELINING", "True")
            .env("ANSIBLE_LOCALHOST_WARNING", "false"),
    )?;
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("ansible-playbook {extra:?} failed ({}):\n{text}", o.status);
    }
    Ok(text)
}

/// `changed=N` of each member in the PLAY RECAP.
fn changed(recap: &str) -> Result<Vec<(String, u32)>> {
    let mut v = Vec::new();
    for name in MEMBERS {
        let line = recap
            .lines()
            .rev()
            .find(|l| l.starts_with(name) && l.contains("changed="))
            .with_context(|| format!("no recap line for {name} in:\n{recap}"))?;
        let n = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("changed="))
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("cannot read changed= in {line:?}"))?;
        v.push((name.to_string(), n));
    }
    Ok(v)
}

#[test]
fn ansible_role_installs_a_healthy_cluster_over_ssh_idempotently_and_rolls_changes() -> Result<()> {
    let binary = release::static_cairn()?;
    let hosts = HostSet::start("packaging-ansible", &MEMBERS)?;
    let net = hosts.hosts()[0].address.octets();
    let mut yaml = format!(
        "cluster: {{ name: packaging-ansible, bootstrap: static }}\ntls: {{ enabled: true, clients: [admin] }}\n\
         firewall: {{ backend: nftables, client_sources: [{}.{}.{}.0/24] }}\nnodes:\n",
        net[0], net[1], net[2]
    );
    for h in hosts.hosts() {
        yaml.push_str(&format!(
            "  - {{ name: {}, address: {}, ssh: {{ user: {OPERATOR}, key: {} }} }}\n",
            h.name,
            h.address,
            hosts.ssh_key().display()
        ));
    }
    let spec = hosts.scratch().join("cluster.yaml");
    std::fs::write(&spec, yaml)?;
    let out = hosts.scratch().join("out");
    provision::render(&spec, &out, &[])?;

    let t = Instant::now();
    let check = playbook(&out, &binary, &["--check"])?;
    eprintln!("--check run: {:.1?}", t.elapsed());
    ensure!(
        changed(&check)?.iter().all(|(_, n)| *n > 0),
        "--check on fresh hosts should report changes:\n{check}"
    );
    for h in hosts.hosts() {
        let present = hosts.exec(
            h,
            "test -e /usr/local/bin/cairn && echo present || echo absent",
        )?;
        ensure!(
            present.trim() == "absent",
            "--check installed cairn on {}",
            h.name
        );
    }

    let t0 = Instant::now();
    let first = playbook(&out, &binary, &[])?;
    ensure!(
        changed(&first)?.iter().all(|(_, n)| *n > 0),
        "first run changed nothing:\n{first}"
    );
    eprintln!("first run: {:.1?}", t0.elapsed());
    let t1 = Instant::now();
    let second = playbook(&out, &binary, &[])?;
    let again = changed(&second)?;
    ensure!(
        again.iter().all(|(_, n)| *n == 0),
        "second run is not idempotent: {again:?}\n{second}"
    );
    eprintln!(
        "second run: {:.1?}, changed=0 on every member",
        t1.elapsed()
    );

    let pki = out.join("pki");
    let urls: Vec<String> = hosts
        .hosts()
        .iter()
        .map(|h| format!("https://{}:2379", h.address))
        .collect();
    let ctl = Etcdctl {
        endpoints: urls.join(","),
        cacert: Some(pki.join("ca.crt")),
        cert: Some((pki.join("clients/admin.crt"), pki.join("clients/admin.key"))),
    };
    let health = ctl.run(&["endpoint", "health", "--cluster"])?;
    let text = format!("{}{}", health.stdout, health.stderr);
    ensure!(
        health.success() && text.matches("is healthy").count() == MEMBERS.len(),
        "cluster not healthy after the role ran:\n{text}"
    );
    ctl.ok(&["put", "installed-by", "ansible"])?;

    for h in hosts.hosts() {
        let facts = hosts.exec(
            h,
            "systemctl is-active cairn; systemctl is-enabled cairn; \
             stat -c '%U %a' /etc/cairn/pki/server.key /etc/cairn/pki/peer.key /etc/cairn/cairn.env; \
             nft list table inet cairn >/dev/null && echo nft-loaded; \
             grep -c 'include \"/etc/cairn/cairn.nft\"' /etc/nftables.conf; \
             grep -c 'starting a new cluster' /var/log/cairn/cairn.log; \
             grep -c 'cairn\\[' /var/log/syslog || true",
        )?;
        // The rsyslog rule is in place before cairn starts: its first lines are in its own file and,
        // because the rule stops them, not in /var/log/syslog.
        let want = "active\nenabled\ncairn 600\ncairn 600\nroot 640\nnft-loaded\n1\n1\n0";
        ensure!(
            facts.trim() == want,
            "{}: unit, key modes, firewall or log routing not as installed:\n{facts}\nwant:\n{want}",
            h.name
        );
    }

    // A changed env file on every member: the rolling play restarts one member at a time, waiting for its
    // health before the next, so the cluster keeps a quorum and a writer never stops.
    for m in MEMBERS {
        let env = out.join("nodes").join(m).join("cairn.env");
        let mut text = std::fs::read_to_string(&env)?;
        text.push_str("# rolled out by the ansible test\n");
        std::fs::write(&env, text)?;
    }
    let writer = SeqWriter::start(ctl.clone(), "rolling/");
    let rolled = playbook(&out, &binary, &[])?;
    // Serial batches show as: restart handler, then the health wait, once per member in turn.
    let steps: Vec<&str> = rolled
        .lines()
        .filter_map(|l| {
            if l.starts_with("RUNNING HANDLER [cairn : Restart cairn]") {
                Some("restart")
            } else if l.starts_with("TASK [cairn : Wait until the member reports healthy]") {
                Some("wait")
            } else {
                None
            }
        })
        .collect();
    ensure!(
        steps == ["restart", "wait", "restart", "wait", "restart", "wait"],
        "expected restart+wait per member in turn, got {steps:?}:\n{rolled}"
    );
    ctl.ok_within(
        "health after the rolling restart",
        Duration::from_secs(30),
        &["endpoint", "health", "--cluster"],
    )?;
    let acked = writer.finish();
    ensure!(
        !acked.is_empty(),
        "no write was acknowledged during the rolling restart"
    );
    let lost = missing(&ctl, "rolling/", &acked)?;
    ensure!(
        lost.is_empty(),
        "acknowledged writes lost in the rolling restart: {lost:?}"
    );
    let got = ctl.ok(&["get", "installed-by", "--print-value-only"])?;
    ensure!(
        got.trim() == "ansible",
        "data lost in the rolling restart: {got:?}"
    );
    eprintln!(
        "rolling restart: {} writes acknowledged during it, none lost",
        acked.len()
    );
    Ok(())
}

/// `ansible-playbook --check --tags firewall` of the role against this machine (local connection, check
/// mode: nothing is changed), as every host of the rendered inventory `out`, limited to `host`.
fn firewall_check(out: &Path, host: &str) -> Result<String> {
    let tool = require("ansible-playbook", "ansible-core")?;
    let o = output(
        Command::new(tool)
            .arg("--check")
            .args(["--tags", "firewall", "--limit", host])
            .arg("-i")
            .arg(out.join("ansible/inventory.yml"))
            .arg(workspace::root().join("ansible/playbook.yml"))
            .arg("-e")
            .arg(format!("cairn_render_dir={}", out.display()))
            .args(["-e", "cairn_binary=/bin/true"])
            .args([
                "-e",
                "ansible_connection=local",
                "-e",
                "ansible_become=false",
            ])
            .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCALHOST_WARNING", "false"),
    )?;
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    ensure!(
        o.status.success(),
        "ansible-playbook --check failed ({}):\n{text}",
        o.status
    );
    Ok(text)
}

/// Issue 19, item 8: the inventory carries the firewall backend and the role installs that backend's files
/// (a firewalld render used to fail on a missing cairn.nft); an IPv6 member's health URL is bracketed.
#[test]
fn ansible_role_installs_the_rendered_firewall_backend_and_polls_ipv6_members_in_brackets(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let static3 = std::fs::read_to_string(provision::example("static3"))?;
    for (backend, task) in [
        ("firewalld", "Install the firewalld script"),
        ("iptables", "Install the iptables and ip6tables rules"),
        ("nftables", "Install the nftables rules"),
    ] {
        let file = dir.path().join(format!("{backend}.yaml"));
        std::fs::write(
            &file,
            static3.replace("backend: nftables", &format!("backend: {backend}")),
        )?;
        let out = dir.path().join(backend);
        provision::render(&file, &out, &[])?;
        let inv = tools::ansible_inventory(&out.join("ansible/inventory.yml"))?;
        ensure!(
            inv["_meta"]["hostvars"]["infra0"]["cairn_firewall"] == backend,
            "{backend}: the inventory does not carry the backend: {inv}"
        );
        let text = firewall_check(&out, "infra0")?;
        let ran = text
            .split("TASK [")
            .find(|t| t.starts_with(&format!("cairn : {task}")))
            .with_context(|| format!("{backend}: task {task:?} did not run:\n{text}"))?;
        ensure!(
            ran.contains("changed: [infra0]"),
            "{backend}: {task:?}:\n{ran}"
        );
    }
    let out = dir.path().join("dualstack");
    provision::render(&provision::example("dualstack"), &out, &[])?;
    let inv = tools::ansible_inventory(&out.join("ansible/inventory.yml"))?;
    let url = &inv["_meta"]["hostvars"]["m2"]["cairn_health_url"];
    ensure!(
        url == "https://[fd00:3::12]:2379/health",
        "m2's health URL: {url}"
    );
    Ok(())
}
