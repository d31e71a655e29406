//! The host-container harness itself: what apply and the Ansible role rely on from a "server".

use cairn_tests::hosts::HostSet;

/// Two hosts come up with systemd running, sshd reachable as the operator with sudo, their own addresses,
/// and working nftables; they reach each other over the private network.
#[test]
fn hosts_boot_systemd_and_serve_ssh() -> anyhow::Result<()> {
    let set = HostSet::start("lead-hosts", &["h1", "h2"])?;
    let (h1, h2) = (set.host("h1")?.clone(), set.host("h2")?.clone());
    let state = set.exec(&h1, "systemctl is-system-running --wait || true")?;
    assert_eq!(state.trim(), "running", "systemd state on h1: {state}");
    let (ok, out) = set.ssh(&h2, "sudo -n id -u && hostname")?;
    assert!(ok, "ssh to h2 failed: {out}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "h2"]);
    set.exec(
        &h1,
        "nft add table inet probe && nft list tables | grep -q probe",
    )?;
    let ping = set.exec(&h1, &format!("nc -z -w 3 {} 22 && echo reach", h2.address))?;
    assert!(ping.contains("reach"), "h1 cannot reach h2:22: {ping}");
    Ok(())
}
