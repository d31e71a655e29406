//! The container image as an operator runs it: built by scripts/container-image.sh (FROM scratch, static
//! cairn), three containers on a private Docker network with the files `provision render` wrote mounted
//! read-only, checked from the host with the real etcdctl over mutual TLS; `docker kill` of the leader keeps
//! the cluster writable.

use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_tests::docker::{Container, Network};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::tools::run_ok;
use cairn_tests::{provision, wait, workspace};

const IMAGE: &str = "cairn:latest";
const NETWORK: &str = "packaging-container";
const SUBNET: &str = "10.231.1.0/24";
const MEMBERS: [(&str, &str); 3] = [
    ("c0", "10.231.1.10"),
    ("c1", "10.231.1.11"),
    ("c2", "10.231.1.12"),
];
/// The image's unprivileged user (packaging/container/Dockerfile).
const IMAGE_UID: u32 = 10001;

fn cluster_yaml() -> String {
    let mut s = String::from(
        "cluster:\n  name: packaging-container\n  bootstrap: static\n  data_dir: /var/lib/cairn\n  \
         config_dir: /etc/cairn\ntls:\n  enabled: true\n  clients: [admin]\nfirewall:\n  backend: none\nnodes:\n",
    );
    for (name, addr) in MEMBERS {
        s.push_str(&format!("  - {{ name: {name}, address: {addr} }}\n"));
    }
    s
}

/// A copy of a member's rendered pki/ owned by the image's user (keys stay 0600), to mount read-only.
fn stage_pki(rendered: &Path, stage: &Path) -> Result<()> {
    std::fs::create_dir_all(stage.join("pki"))?;
    chown(stage, Some(IMAGE_UID), Some(IMAGE_UID))?;
    std::fs::set_permissions(stage, std::fs::Permissions::from_mode(0o750))?;
    chown(stage.join("pki"), Some(IMAGE_UID), Some(IMAGE_UID))?;
    for e in std::fs::read_dir(rendered.join("pki"))? {
        let e = e?;
        let to = stage.join("pki").join(e.file_name());
        std::fs::copy(e.path(), &to).with_context(|| format!("copying {}", e.path().display()))?;
        chown(&to, Some(IMAGE_UID), Some(IMAGE_UID))?;
    }
    Ok(())
}

/// Index into MEMBERS of the member that reports itself leader.
fn leader(ctl: &Etcdctl) -> std::result::Result<usize, String> {
    let status = ctl
        .json(&["endpoint", "status", "-w", "json"])
        .map_err(|e| format!("{e:#}"))?;
    for e in status.as_array().into_iter().flatten() {
        let st = &e["Status"];
        if st["leader"].as_u64().is_some() && st["leader"] == st["header"]["member_id"] {
            let url = e["Endpoint"].as_str().unwrap_or_default();
            if let Some(i) = MEMBERS.iter().position(|(_, a)| url.contains(a)) {
                return Ok(i);
            }
        }
    }
    Err(format!("no endpoint reports itself leader: {status}"))
}

#[test]
fn three_containers_form_a_tls_cluster_and_survive_docker_kill_of_the_leader() -> Result<()> {
    let built = Instant::now();
    let script = workspace::root().join("scripts/container-image.sh");
    let out = run_ok(Command::new(&script).arg(IMAGE)).context("building the image")?;
    let size_line = out
        .lines()
        .find(|l| l.starts_with("image "))
        .context("container-image.sh printed no size")?;
    eprintln!("{size_line} (build or cache check {:.1?})", built.elapsed());

    let dir = tempfile::tempdir()?;
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(&spec, cluster_yaml())?;
    let rendered = dir.path().join("out");
    provision::render(&spec, &rendered, &[])?;

    let net = Network::create(NETWORK, SUBNET)?;
    let started = Instant::now();
    let mut containers = Vec::new();
    for (name, addr) in MEMBERS {
        let node = rendered.join("nodes").join(name);
        let stage = dir.path().join("stage").join(name);
        stage_pki(&node, &stage)?;
        let mount = format!("{}:/etc/cairn:ro", stage.display());
        let env = node.join("cairn.env");
        let cname = format!("{NETWORK}-{name}");
        containers.push(Container::run(
            &cname,
            &[
                "--network",
                &net.name,
                "--ip",
                addr,
                "--hostname",
                name,
                "-v",
                &mount,
                "--env-file",
                &env.display().to_string(),
                IMAGE,
            ],
        )?);
    }
    let urls: Vec<String> = MEMBERS
        .iter()
        .map(|(_, a)| format!("https://{a}:2379"))
        .collect();
    let pki = rendered.join("pki");
    let ctl = Etcdctl {
        endpoints: urls.join(","),
        cacert: Some(pki.join("ca.crt")),
        cert: Some((pki.join("clients/admin.crt"), pki.join("clients/admin.key"))),
    };
    let logs = |cs: &[Container]| -> String {
        cs.iter()
            .map(|c| format!("--- {}\n{}", c.name, c.logs()))
            .collect()
    };
    let health = wait::wait_for(
        "etcdctl endpoint health --cluster",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let o = ctl
                .run(&["endpoint", "health", "--cluster"])
                .map_err(|e| format!("{e:#}"))?;
            // etcdctl 3.4 prints the health lines on stderr.
            let text = format!("{}{}", o.stdout, o.stderr);
            if o.success() && text.matches("is healthy").count() == MEMBERS.len() {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .with_context(|| logs(&containers))?;
    eprintln!(
        "3 containers healthy {:.1?} after the first docker run:\n{health}",
        started.elapsed()
    );

    ctl.ok(&["put", "before-kill", "1"])?;
    let victim = wait::wait_for(
        "a leader",
        Duration::from_secs(20),
        Duration::from_millis(300),
        || leader(&ctl),
    )?;
    containers[victim].kill()?;
    let rest: Vec<String> = (0..MEMBERS.len())
        .filter(|i| *i != victim)
        .map(|i| urls[i].clone())
        .collect();
    let survivors = ctl.with_endpoints(rest.join(","));
    // A new leader is elected within a few election timeouts; writes succeed once it is.
    let killed_at = Instant::now();
    survivors
        .ok_within(
            "a write after docker kill of the leader",
            Duration::from_secs(30),
            &["put", "after-kill", "2"],
        )
        .with_context(|| logs(&containers))?;
    eprintln!(
        "leader {} killed; writable again after {:.1?}",
        MEMBERS[victim].0,
        killed_at.elapsed()
    );
    for (key, want) in [("before-kill", "1"), ("after-kill", "2")] {
        let got = survivors.ok(&["get", key, "--print-value-only"])?;
        ensure!(got.trim() == want, "get {key}: {got:?}, want {want}");
    }
    let dead = Etcdctl {
        endpoints: urls[victim].clone(),
        ..ctl.clone()
    };
    if dead.run(&["endpoint", "health"])?.success() {
        bail!("the killed member still answers");
    }
    drop(containers);
    drop(net);
    Ok(())
}
