//! Packaging checked with the real tools that run here: Nix parses every file and evaluates the NixOS
//! module with nixpkgs' real module system (`lib.evalModules` of nixpkgs' lib, kept outside the repository:
//! see `nixpkgs_lib`), also with the member files that `provision render --format nix` writes; Ansible
//! syntax-checks the playbook.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use cairn_tests::provision;
use cairn_tests::tools::{require, run_ok};
use cairn_tests::workspace::root;

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            nix_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
    Ok(())
}

/// nixpkgs' `lib` directory's parent: `$CAIRN_NIXPKGS_LIB`, else the copy in `third_party/nixpkgs-lib`
/// (nixpkgs' unmodified, MIT-licensed lib, kept in the tree so a clean clone evaluates offline).
fn nixpkgs_lib() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CAIRN_NIXPKGS_LIB") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec![root().join("third_party/nixpkgs-lib")],
    };
    candidates
        .iter()
        .find(|c| c.join("lib/modules.nix").is_file())
        .cloned()
        .with_context(|| {
            format!(
                "nixpkgs' lib not found (looked for lib/modules.nix in {candidates:?}): \
                 set CAIRN_NIXPKGS_LIB to a checkout of nixpkgs or nix-community/nixpkgs.lib"
            )
        })
}

fn nix(tool: &str) -> Result<Command> {
    let mut c = Command::new(require(tool, "nix-bin")?);
    // No nixbld group on build machines; evaluation needs no builders.
    c.env("NIX_CONFIG", "build-users-group =");
    // nix/tests/harness.nix imports <nixpkgs-lib/lib>.
    c.arg("-I")
        .arg(format!("nixpkgs-lib={}", nixpkgs_lib()?.display()));
    Ok(c)
}

#[test]
fn every_nix_file_parses() -> Result<()> {
    let mut files = vec![root().join("flake.nix")];
    nix_files(&root().join("nix"), &mut files)?;
    assert!(
        files.len() >= 8,
        "expected the flake and nix/ files, found {files:?}"
    );
    for f in files {
        run_ok(nix("nix-instantiate")?.arg("--parse").arg(&f))
            .with_context(|| format!("parsing {}", f.display()))?;
    }
    Ok(())
}

#[test]
fn nixos_module_evaluates_to_the_expected_service() -> Result<()> {
    let out = run_ok(
        nix("nix-instantiate")?
            .args(["--eval", "--strict", "--json"])
            .arg(root().join("nix/tests/eval-module.nix")),
    )?;
    let json = out
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .context("no JSON result from nix-instantiate")?;
    let passed: Vec<String> = serde_json::from_str(json)?;
    for case in [
        "initial-cluster-joined-like-etcd",
        "peer-port-open-only-to-members",
        "name-missing-from-initial-cluster-is-refused",
        "static-and-dns-together-are-refused",
        "v3-discovery-has-token-and-endpoints",
        "static-and-v3-discovery-together-are-refused",
        "https-without-certificates-is-refused",
        "disabled-module-adds-nothing",
        "user-mkForce-overrides-a-unit-setting",
        "extra-flags-from-two-modules-merge",
        "bad-cluster-state-is-refused",
        "misspelt-option-is-refused",
        "port-as-string-is-refused",
        "unread-option-wrong-type-is-refused",
    ] {
        assert!(
            passed.iter().any(|p| p == case),
            "case {case} missing from {passed:?}"
        );
    }
    Ok(())
}

/// Every case of nix/tests/refusals.nix fails to evaluate with the message NixOS's module system gives.
#[test]
fn nixos_module_refusals_carry_the_module_systems_messages() -> Result<()> {
    let cases = [
        (
            "bad-cluster-state",
            "A definition for option `services.cairn.initialClusterState' is not of type `one of \"new\", \"existing\"'. Definition values:",
        ),
        (
            "misspelt-option",
            "The option `services.cairn.initalCluster' does not exist.",
        ),
        (
            "port-as-string",
            "A definition for option `services.cairn.clientPort' is not of type `16 bit unsigned integer; between 0 and 65535 (both inclusive)'",
        ),
        (
            // Nothing reads logFile while the service is disabled: only forcing every option finds it.
            "unread-option-wrong-type",
            "A definition for option `services.cairn.logFile' is not of type `null or string'",
        ),
        (
            "conflicting-definitions",
            "The option `services.cairn.name' has conflicting definition values",
        ),
    ];
    for (case, message) in cases {
        let o = nix("nix-instantiate")?
            .args(["--eval", "--strict"])
            .arg(root().join("nix/tests/eval-refused.nix"))
            .args(["--argstr", "case", case])
            .output()
            .context("starting nix-instantiate")?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        ensure!(
            !o.status.success() && stderr.contains(message),
            "{case}: expected a refusal with {message:?}, got {} and:\n{stderr}",
            o.status
        );
    }
    Ok(())
}

/// The last line of nix-instantiate's output that is JSON of the given opening character.
fn json_line(out: &str, open: char) -> Result<serde_json::Value> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with(open))
        .with_context(|| format!("no JSON result from nix-instantiate in:\n{out}"))?;
    Ok(serde_json::from_str(line)?)
}

#[test]
fn rendered_nix_member_runs_what_the_env_file_says() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for example in ["static3", "dns3", "discovery"] {
        let files = dir.path().join(format!("{example}-files"));
        let nixout = dir.path().join(format!("{example}-nix"));
        provision::render(&provision::example(example), &files, &[])?;
        provision::render(&provision::example(example), &nixout, &["--format", "nix"])?;
        ensure!(
            !nixout.join("nodes/infra0/cairn.env").exists(),
            "--format nix wrote the Debian files too"
        );
        for node in ["infra0", "infra1", "infra2"] {
            let member = nixout.join("nodes").join(node).join("cairn.nix");
            let out = run_ok(
                nix("nix-instantiate")?
                    .args(["--eval", "--strict", "--json"])
                    .arg(root().join("nix/tests/eval-rendered.nix"))
                    .arg("--arg")
                    .arg("member")
                    .arg(&member),
            )
            .with_context(|| format!("evaluating the module with {}", member.display()))?;
            let got = json_line(&out, '{')?;
            ensure!(
                got["failedAssertions"] == serde_json::json!([]),
                "{example}/{node}: the module refused the rendered member: {got}"
            );
            // A NixOS member must run with exactly the settings a Debian member gets from cairn.env.
            let want: BTreeMap<String, String> =
                provision::env_file(&files.join("nodes").join(node).join("cairn.env"))?
                    .into_iter()
                    .collect();
            let env: BTreeMap<String, String> = serde_json::from_value(got["environment"].clone())?;
            ensure!(
                env == want,
                "{example}/{node}: module environment differs from cairn.env\nmodule: {env:#?}\nenv file: {want:#?}"
            );
            // examples/discovery.yaml runs on this machine without a firewall: only its settings compare.
            if example == "discovery" {
                continue;
            }
            // The peer port is open to the other members only.
            let own = want["CAIRN_LISTEN_PEER_URLS"]
                .trim_start_matches("https://")
                .trim_end_matches(":2380")
                .to_string();
            let nft = got["nftables"].as_str().unwrap_or_default();
            let peer_rule = nft
                .lines()
                .find(|l| l.contains("tcp dport 2380 accept"))
                .with_context(|| format!("{example}/{node}: no peer rule in {nft}"))?;
            let others = ["10.0.1.10", "10.0.1.11", "10.0.1.12"]
                .into_iter()
                .filter(|a| *a != own);
            ensure!(
                !peer_rule.contains(&own) && others.clone().all(|a| peer_rule.contains(a)),
                "{example}/{node}: peer rule should list {:?} but not {own}: {peer_rule}",
                others.collect::<Vec<_>>()
            );
            ensure!(
                got["rsyslog"]
                    .as_str()
                    .is_some_and(|r| r.contains("then /var/log/cairn/cairn.log")),
                "{example}/{node}: rsyslog wiring missing: {got}"
            );
        }
    }
    Ok(())
}

#[test]
fn ansible_playbook_passes_syntax_check() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let inventory = dir.path().join("inventory.ini");
    std::fs::write(&inventory, "[cairn]\ninfra0 ansible_connection=local\n")?;
    run_ok(
        Command::new(require("ansible-playbook", "ansible-core")?)
            .arg("--syntax-check")
            .arg("-i")
            .arg(&inventory)
            .arg(root().join("ansible/playbook.yml"))
            .env("ANSIBLE_LOCALHOST_WARNING", "false"),
    )?;
    Ok(())
}
