//! The fault-injection harness's short schedule (every fault kind once over three runs) as a system
//! test: `cairn-chaos run --short` against the flavour under test must report no anomaly, no lost
//! write and converged members. The long schedule is `scripts/chaos.sh --runs N` (README).

use std::process::Command;

use cairn_tests::cluster::Flavor;
use cairn_tests::workspace;

#[test]
fn the_short_fault_schedule_finds_no_anomaly_and_loses_no_acknowledged_write() {
    let flavor = Flavor::from_env().unwrap();
    let chaos = workspace::binary("cairn-chaos").unwrap();
    let out = tempfile::Builder::new()
        .prefix("cairn-chaos-")
        .tempdir()
        .unwrap();
    let mut cmd = Command::new(&chaos);
    cmd.args(["run", "--short", "--server", flavor.name(), "--out"])
        .arg(out.path());
    if flavor == Flavor::Cairn {
        cmd.arg("--binary").arg(flavor.binary().unwrap());
    }
    // A seed from the environment replays a schedule that failed in CI (the output names it).
    if let Ok(seed) = std::env::var("CAIRN_CHAOS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let run = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        // Keep the failing runs' histories for `cairn-chaos check DIR`.
        let kept = out.keep();
        panic!(
            "cairn-chaos run --short failed ({}); runs kept in {}\n{stdout}\n{stderr}",
            run.status,
            kept.display()
        );
    }
    assert!(stdout.contains("\nanomalies: 0\n"), "{stdout}");
    assert!(
        stdout.contains("\nacknowledged writes lost: 0\n"),
        "{stdout}"
    );
}
