//! The VM appliance (scripts/vm-image.sh) booted under QEMU with a seed disk made from one rendered member,
//! reached from the host through a forwarded port: cairn's /health over mutual TLS, then a write and a read
//! with the real etcdctl. Slow (TCG only, no KVM here), so ignored unless run with `-- --ignored`.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cairn_tests::etcdctl::Etcdctl;
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
    let qemu_img = require("qemu-img", "qemu-utils")?;
    let curl = require("curl", "curl")?;

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
    // A throw-away overlay: the built image stays pristine for the next boot.
    let disk = dir.path().join("disk.qcow2");
    run_ok(
        Command::new(qemu_img)
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&image)
            .arg(&disk),
    )?;

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
        Duration::from_secs(420),
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
