//! The VM appliance (scripts/vm-image.sh) under QEMU: one booted with a seed disk made from one rendered
//! member, reached from the host through a forwarded port (cairn's /health over mutual TLS, a write and a
//! read with the real etcdctl); and three seeded only with a login, a host key and an address on a private
//! network, then managed by `provision apply examples/appliance.yaml` over SSH. Slow (TCG only, no KVM
//! here), so ignored unless run with `-- --ignored`.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cairn_tests::etcdctl::Etcdctl;
use cairn_tests::netns::Lan;
use cairn_tests::tools::{require, run_ok};
use cairn_tests::{ports, provision, wait, workspace};

/// QEMU's user-mode network gives the guest this address by DHCP.
const GUEST_ADDRESS: &str = "10.0.2.15";

/// The QEMU process, killed when the test ends however it ends.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `scripts/vm-image.sh build` (skipped by the script when its inputs are unchanged); the image's path.
fn build_image() -> Result<std::path::PathBuf> {
    let image = workspace::root().join("out/vm/cairn-appliance.qcow2");
    let t0 = Instant::now();
    let built = run_ok(
        Command::new(workspace::root().join("scripts/vm-image.sh"))
            .arg("build")
            .arg(&image),
    )
    .context("scripts/vm-image.sh build")?;
    eprintln!(
        "{} ({:.0?})",
        built
            .lines()
            .find(|l| l.starts_with("image "))
            .unwrap_or_default(),
        t0.elapsed()
    );
    Ok(image)
}

/// The cairn the image carries, which `provision apply` installs too: `CAIRN_VM_BINARY` when set (as for
/// scripts/vm-image.sh), else the static release build.
fn appliance_cairn() -> std::path::PathBuf {
    match std::env::var_os("CAIRN_VM_BINARY") {
        Some(p) => std::path::PathBuf::from(p),
        None => workspace::root().join("target/x86_64-unknown-linux-gnu/release/cairn"),
    }
}

/// A throw-away overlay of `image`, so the built image stays pristine for the next boot.
fn overlay(image: &Path, disk: &Path) -> Result<()> {
    run_ok(
        Command::new(require("qemu-img", "qemu-utils")?)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(image)
            .arg(disk),
    )?;
    Ok(())
}

fn console_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

// Ignored (reported as such, never counted as a pass) unless asked for: it builds an image and boots it
// under TCG for minutes.
#[test]
#[ignore = "slow (VM under TCG): cargo test -p cairn-tests --test system vm_ -- --ignored"]
fn vm_appliance_boots_from_its_seed_disk_and_serves_health_through_a_forwarded_port() -> Result<()>
{
    let qemu = require("qemu-system-x86_64", "qemu-system-x86")?;
    let curl = require("curl", "curl")?;

    let image = build_image()?;

    let dir = tempfile::tempdir()?;
    let spec = dir.path().join("cluster.yaml");
    std::fs::write(
        &spec,
        format!(
            "cluster: {{ name: packaging-vm, bootstrap: static }}\ntls: {{ enabled: true, clients: [admin] }}\n\
             firewall: {{ backend: none }}\nnodes: [ {{ name: vm0, address: {GUEST_ADDRESS} }} ]\n"
        ),
    )?;
    let out = dir.path().join("out");
    provision::render(&spec, &out, &[])?;
    let seed = dir.path().join("seed.img");
    run_ok(
        Command::new(workspace::root().join("scripts/vm-image.sh"))
            .arg("seed")
            .arg(out.join("nodes/vm0"))
            .arg(&seed),
    )?;
    let disk = dir.path().join("disk.qcow2");
    overlay(&image, &disk)?;

    let port = ports::free_ports(1)?[0];
    let console = dir.path().join("console.log");
    let boot = Instant::now();
    let _vm = Vm(Command::new(qemu)
        .args(["-accel", "tcg", "-m", "1024", "-smp", "2", "-nographic"])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", seed.display()))
        .arg("-nic")
        .arg(format!(
            "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:{port}-:2379"
        ))
        .stdin(Stdio::null())
        .stdout(File::create(&console)?)
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64")?);

    let pki = out.join("pki");
    let url = format!("https://127.0.0.1:{port}/health");
    let body = wait::wait_for(
        "cairn's /health through the forwarded port",
        Duration::from_secs(900),
        Duration::from_secs(2),
        || {
            let o = Command::new(&curl)
                .args(["-sS", "--max-time", "5", "--cacert"])
                .arg(pki.join("ca.crt"))
                .arg("--cert")
                .arg(pki.join("clients/admin.crt"))
                .arg("--key")
                .arg(pki.join("clients/admin.key"))
                .arg(&url)
                .output()
                .map_err(|e| e.to_string())?;
            let body = String::from_utf8_lossy(&o.stdout).to_string();
            if body.contains(r#""health":"true""#) {
                Ok(body)
            } else {
                Err(format!("{body}{}", String::from_utf8_lossy(&o.stderr)))
            }
        },
    )
    .with_context(|| format!("guest console:\n{}", console_tail(&console)))?;
    eprintln!("boot to /health: {:.0?} ({body})", boot.elapsed());

    let ctl = Etcdctl {
        endpoints: format!("https://127.0.0.1:{port}"),
        cacert: Some(pki.join("ca.crt")),
        cert: Some((pki.join("clients/admin.crt"), pki.join("clients/admin.key"))),
    };
    ctl.ok(&["put", "appliance", "booted"])?;
    let got = ctl.ok(&["get", "appliance", "--print-value-only"])?;
    ensure!(got.trim() == "booted", "get appliance: {got:?}");
    let text = std::fs::read_to_string(&console)?;
    ensure!(
        text.lines()
            .any(|l| l.contains("Finished") && l.contains("cairn-seed")),
        "the console shows no finished cairn-seed.service:\n{}",
        console_tail(&console)
    );
    Ok(())
}

/// The appliances of examples/appliance.yaml: name, address on the private network.
const APPLIANCES: [(&str, &str); 3] = [
    ("app0", "10.77.0.10"),
    ("app1", "10.77.0.11"),
    ("app2", "10.77.0.12"),
];

/// `ssh-keygen -t ed25519 -N '' -f path`.
fn keygen(path: &Path, comment: &str) -> Result<()> {
    run_ok(
        Command::new(require("ssh-keygen", "openssh-client")?)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    )?;
    Ok(())
}

// Three appliances on a bridge in a network namespace of their own (taps, no host network touched); the
// controller (provision, ssh, etcdctl) runs in that namespace too, on the bridge's 10.77.0.1.
#[test]
#[ignore = "slow (3 VMs under TCG): cargo test -p cairn-tests --test system vm_ -- --ignored"]
fn vm_three_appliances_seeded_with_a_login_are_managed_by_provision_apply_over_ssh() -> Result<()> {
    let qemu = require("qemu-system-x86_64", "qemu-system-x86")?;
    let image = build_image()?;
    let cairn = appliance_cairn();
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    // The operator's key, and each appliance's host key made here so known_hosts is written before boot.
    keygen(&d.join("operator"), "operator")?;
    let mut known_hosts = String::new();
    let lan = Lan::create(&format!("cvm{}", std::process::id()), "10.77.0.1")?;
    let mut vms = Vec::new();
    // The serial consoles outlive the test's temporary directory, for diagnosis after a failure.
    let consoles = workspace::root().join("out/vm");
    std::fs::create_dir_all(&consoles)?;
    let boot = Instant::now();
    for (i, (name, address)) in APPLIANCES.iter().enumerate() {
        let host_key = d.join(format!("{name}_host_key"));
        keygen(&host_key, name)?;
        let public = std::fs::read_to_string(d.join(format!("{name}_host_key.pub")))?;
        let mut fields = public.split_whitespace();
        let (kind, key) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        known_hosts.push_str(&format!("{address} {kind} {key}\n"));

        let seed = d.join(format!("seed-{name}.img"));
        run_ok(
            Command::new(workspace::root().join("scripts/vm-image.sh"))
                .args(["seed", "-"])
                .arg(&seed)
                .args(["--user", "operator", "--authorized-key"])
                .arg(d.join("operator.pub"))
                .arg("--host-key")
                .arg(&host_key)
                .args(["--address", &format!("{address}/24"), "--hostname", name]),
        )?;
        let disk = d.join(format!("{name}.qcow2"));
        overlay(&image, &disk)?;
        let tap = format!("tap{i}");
        lan.hub.ip(&["tuntap", "add", &tap, "mode", "tap"])?;
        lan.hub.ip(&["link", "set", &tap, "master", "br0", "up"])?;
        let console = consoles.join(format!("{name}.console"));
        let vm = lan
            .hub
            .command(&qemu)
            .args(["-accel", "tcg", "-m", "768", "-smp", "1", "-nographic"])
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", seed.display()))
            .arg("-netdev")
            .arg(format!("tap,id=n0,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!("virtio-net-pci,netdev=n0,mac=52:54:00:77:00:1{i}"))
            .stdin(Stdio::null())
            .stdout(File::create(&console)?)
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting qemu-system-x86_64")?;
        vms.push((Vm(vm), console));
    }
    std::fs::write(d.join("known_hosts"), &known_hosts)?;

    // SSH as the seed's user, checked against the seed's host key (StrictHostKeyChecking=yes).
    for ((name, address), (_, console)) in APPLIANCES.iter().zip(&vms) {
        wait::wait_for(
            &format!("ssh operator@{address} ({name}) with sudo"),
            Duration::from_secs(900),
            Duration::from_secs(5),
            || {
                let o = lan
                    .hub
                    .command("ssh")
                    .args([
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "StrictHostKeyChecking=yes",
                        "-o",
                    ])
                    .arg(format!(
                        "UserKnownHostsFile={}",
                        d.join("known_hosts").display()
                    ))
                    .args(["-o", "ConnectTimeout=5", "-i"])
                    .arg(d.join("operator"))
                    .arg(format!("operator@{address}"))
                    .args(["sudo", "-n", "true"])
                    .output()
                    .map_err(|e| e.to_string())?;
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).to_string())
                }
            },
        )
        .with_context(|| format!("{name}'s console:\n{}", console_tail(console)))?;
    }
    eprintln!(
        "three appliances reachable over SSH {:.0?} after the first qemu",
        boot.elapsed()
    );

    // examples/appliance.yaml as written, plus this test's key and known_hosts.
    let example = std::fs::read_to_string(provision::example("appliance"))?;
    let spec = d.join("cluster.yaml");
    std::fs::write(
        &spec,
        format!(
            "{}apply: {{ known_hosts: {}, health_timeout_seconds: 600 }}\n",
            example.replace(
                "ssh: { user: operator }",
                &format!(
                    "ssh: {{ user: operator, key: {} }}",
                    d.join("operator").display()
                )
            ),
            d.join("known_hosts").display()
        ),
    )?;
    let provision_bin = workspace::binary("provision")?;
    let apply = |what: &str| -> Result<String> {
        let t = Instant::now();
        let out = run_ok(
            lan.hub
                .command(&provision_bin)
                .current_dir(d)
                .arg("apply")
                .arg(&spec)
                .arg("--binary")
                .arg(&cairn),
        )
        .with_context(|| format!("provision apply ({what})"))?;
        eprintln!("provision apply ({what}): {:.0?}", t.elapsed());
        Ok(out)
    };
    let first = apply("bootstrap")?;
    ensure!(
        first.contains("healthy"),
        "first apply did not report health:\n{first}"
    );

    let ctl = Etcdctl {
        endpoints: APPLIANCES
            .iter()
            .map(|(_, a)| format!("https://{a}:2379"))
            .collect::<Vec<_>>()
            .join(","),
        cacert: Some(d.join("out/appliance/pki/ca.crt")),
        cert: Some((
            d.join("out/appliance/pki/clients/admin.crt"),
            d.join("out/appliance/pki/clients/admin.key"),
        )),
    };
    let etcdctl = require("etcdctl", "etcd-client")?;
    // Handshakes with an emulated guest take seconds: etcdctl's 3 s dial and 5 s command timeouts are
    // raised (pflag keeps the last of a flag given twice).
    let run_ctl = |ctl: &Etcdctl, args: &[&str]| -> Result<String> {
        run_ok(
            lan.hub
                .command(&etcdctl)
                .env("ETCDCTL_API", "3")
                .args(ctl.argv(args))
                .args(["--dial-timeout=30s", "--command-timeout=60s"]),
        )
    };
    // Right after apply a member may still be catching up with the leader (elections take seconds with
    // the example's TCG timings), so health is polled rather than read once.
    let health = wait::wait_for(
        "etcdctl endpoint health: 3 healthy",
        Duration::from_secs(300),
        Duration::from_secs(5),
        || {
            let h = run_ctl(&ctl, &["endpoint", "health"]).map_err(|e| format!("{e:#}"))?;
            if h.matches("is healthy").count() == 3 {
                Ok(h)
            } else {
                Err(h)
            }
        },
    )?;
    eprintln!("{health}");
    let members = run_ctl(&ctl, &["member", "list"])?;
    ensure!(
        members.lines().filter(|l| l.contains("started")).count() == 3,
        "etcdctl member list:\n{members}"
    );
    // A write through the first appliance is read through the last (linearizable get: via the leader).
    let (first_vm, last_vm) = (APPLIANCES[0].1, APPLIANCES[2].1);
    run_ctl(
        &ctl.with_endpoints(format!("https://{first_vm}:2379")),
        &["put", "appliance", "managed"],
    )?;
    let got = run_ctl(
        &ctl.with_endpoints(format!("https://{last_vm}:2379")),
        &["get", "appliance", "--print-value-only"],
    )?;
    ensure!(
        got.trim() == "managed",
        "get appliance on {last_vm}: {got:?}"
    );
    let again = apply("re-apply")?;
    ensure!(
        again.contains("no changes"),
        "second apply changed something:\n{again}"
    );
    eprintln!("total: {:.0?}", boot.elapsed());
    Ok(())
}
