//! Packaging checked with the real tools that run here: Nix parses every file and evaluates the NixOS
//! module against our small harness (nixpkgs cannot be fetched), Ansible syntax-checks the playbook.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
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

fn nix(tool: &str) -> Result<Command> {
    let mut c = Command::new(require(tool, "nix-bin")?);
    // No nixbld group on build machines; evaluation needs no builders.
    c.env("NIX_CONFIG", "build-users-group =");
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
        "misspelt-option-is-reported",
    ] {
        assert!(
            passed.iter().any(|p| p == case),
            "case {case} missing from {passed:?}"
        );
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
