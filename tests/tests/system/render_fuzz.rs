//! The property test of provision's cluster-file reader (issue 19): random and mutated cluster files
//! (tests/src/spec_fuzz.rs) through `check`'s reader and `render`'s templates in-process, never a panic,
//! every refusal located (FILE:LINE:COL) with a fix; then a sample through the real CLI: refusals exit 2,
//! accepted files render and pass the real validators.
//!
//! CI runs `CAIRN_SPEC_FUZZ_CASES` cases (default 100 000); `scripts/fuzz-provision.sh` runs more with
//! other seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use cairn_tests::spec_fuzz::case;
use cairn_tests::{tools, workspace};
use provision::spec::{self, SpecError};

fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// `provision ARGS` in `cwd`: exit code and output.
fn provision(cwd: &Path, args: &[&str]) -> Result<(i32, String)> {
    let run = cairn_tests::apply::provision(cwd, args)?;
    Ok((run.code.unwrap_or(-1), run.text))
}

/// A file that made the reader panic (or broke a property), kept for the report.
fn keep(text: &str, n: u64) -> PathBuf {
    let p = std::env::temp_dir().join(format!("cairn-spec-fuzz-{n}.yaml"));
    let _ = std::fs::write(&p, text);
    p
}

/// Check every property of one case in-process; returns the checked spec when it was accepted.
fn one(
    n: u64,
    text: &str,
    base: &Path,
    t: &provision::templates::Templates,
) -> Result<Option<spec::Spec>> {
    let parsed = std::panic::catch_unwind(|| spec::parse("fuzz.yaml", base, text));
    let parsed = match parsed {
        Ok(p) => p,
        Err(_) => bail!(
            "case {n} panicked in the reader; input kept at {}",
            keep(text, n).display()
        ),
    };
    match parsed {
        Err(SpecError::Invalid(problems)) => {
            ensure!(!problems.is_empty(), "case {n}: refused without a problem");
            for p in &problems {
                let head = format!("fuzz.yaml:{}:{}: ", p.pos.line, p.pos.column);
                ensure!(
                    p.pos.line >= 1 && p.pos.column >= 1 && p.to_string().starts_with(&head),
                    "case {n}: problem without a location: {p}\ninput kept at {}",
                    keep(text, n).display()
                );
                ensure!(
                    !p.fix.is_empty() && !p.message.is_empty(),
                    "case {n}: problem without a message or fix: {p:?}"
                );
            }
            Ok(None)
        }
        Err(e @ SpecError::Read { .. }) => bail!("case {n}: {e}"),
        Ok(s) => {
            let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                provision::render::render_all(&s, t, &|_| None)
                    .map(|_| provision::render::nix::render(&s))
            }));
            match rendered {
                Ok(Ok(_)) => Ok(Some(s)),
                Ok(Err(e)) => bail!(
                    "case {n}: accepted but the templates fail: {e}\ninput kept at {}",
                    keep(text, n).display()
                ),
                Err(_) => bail!(
                    "case {n}: render panicked; input kept at {}",
                    keep(text, n).display()
                ),
            }
        }
    }
}

/// What kind of accepted file it is, to spread the validator sample over kinds.
fn kind(s: &spec::Spec) -> String {
    format!(
        "{}/{}/{}/{}",
        s.firewall.backend,
        s.tls
            .as_ref()
            .map(|t| t.ca.to_string())
            .unwrap_or_else(|| "plain".into()),
        s.bootstrap,
        s.nodes.iter().any(|n| n.addresses.len() > 1)
    )
}

/// Render `text` with the CLI and put every artifact through its validator.
fn validate_rendered(dir: &Path, text: &str, heavy: bool) -> Result<()> {
    std::fs::write(dir.join("c.yaml"), text)?;
    let (code, said) = provision(dir, &["render", "c.yaml", "-o", "out"])?;
    ensure!(code == 0, "render exited {code}:\n{said}\nfor:\n{text}");
    let out = dir.join("out");
    for node in std::fs::read_dir(out.join("nodes"))? {
        let node = node?.path();
        let pki = node.join("pki");
        if pki.join("server.crt").is_file() {
            tools::openssl_verify(
                &pki.join("ca.crt"),
                &pki.join("server.crt"),
                Some("sslserver"),
            )?;
            let peer_ca = if pki.join("peer-ca.crt").is_file() {
                pki.join("peer-ca.crt")
            } else {
                pki.join("ca.crt")
            };
            tools::openssl_verify(&peer_ca, &pki.join("peer.crt"), Some("sslclient"))?;
        }
        let fw = node.join("firewall");
        for (file, check) in [
            ("cairn.nft", 0),
            ("cairn.iptables", 1),
            ("cairn.ip6tables", 2),
            ("cairn-firewalld.sh", 3),
        ] {
            let f = fw.join(file);
            if !f.is_file() {
                continue;
            }
            match check {
                0 => tools::nft_check(&f)?,
                1 => tools::iptables_check(&f, false)?,
                2 => tools::iptables_check(&f, true)?,
                _ => {
                    tools::run_ok(Command::new("sh").arg("-n").arg(&f))?;
                }
            }
        }
        if heavy {
            let unit = node.join("systemd/cairn.service");
            let root = tools::systemd_root(&dir.join("root"), &unit, "/usr/local/bin/cairn")?;
            tools::systemd_verify(&root)?;
            tools::rsyslog_check(&node.join("rsyslog/30-cairn.conf"))?;
        }
    }
    if out.join("dns").is_dir() {
        for z in std::fs::read_dir(out.join("dns"))? {
            let z = z?.path();
            if let Some(domain) = z
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(|f| f.strip_suffix(".zone"))
            {
                tools::named_checkzone(domain, &z).with_context(|| format!("zone of:\n{text}"))?;
            }
        }
    }
    if heavy {
        tools::ansible_inventory(&out.join("ansible/inventory.yml"))?;
    }
    Ok(())
}

#[test]
fn random_and_mutated_cluster_files_never_panic_refusals_are_located_and_accepted_ones_validate(
) -> Result<()> {
    let cases = env_u64("CAIRN_SPEC_FUZZ_CASES", 100_000)?;
    let seed = env_u64("CAIRN_SPEC_FUZZ_SEED", 19)?;
    let seeds: Vec<String> = ["static3", "dns3", "five", "local", "dualstack", "auth"]
        .iter()
        .map(|e| std::fs::read_to_string(workspace::root().join(format!("examples/{e}.yaml"))))
        .collect::<std::io::Result<_>>()?;
    let base = tempfile::tempdir()?;
    let t = provision::templates::Templates::load(None)?;
    let start = Instant::now();
    let (mut accepted, mut refused) = (0u64, 0u64);
    let mut refused_sample: Vec<String> = Vec::new();
    let mut accepted_sample: BTreeMap<String, String> = BTreeMap::new();
    for n in 0..cases {
        let text = case(seed, n, &seeds);
        match one(n, &text, base.path(), &t)? {
            None => {
                refused += 1;
                if refused % 997 == 0 && refused_sample.len() < 60 {
                    refused_sample.push(text);
                }
            }
            Some(s) => {
                accepted += 1;
                // RSA keys come from `openssl genpkey` (seconds each): the sample sticks to ECDSA.
                let ecdsa = s
                    .tls
                    .as_ref()
                    .is_none_or(|t| t.key_algorithm == spec::KeyAlgorithm::EcdsaP256);
                if ecdsa && accepted_sample.len() < 16 {
                    accepted_sample.entry(kind(&s)).or_insert(text);
                }
            }
        }
    }
    eprintln!(
        "spec fuzz (seed {seed}): {cases} cases in {:.1} s: {accepted} accepted, {refused} refused, no panic, every refusal located",
        start.elapsed().as_secs_f64()
    );
    ensure!(
        accepted * 20 >= cases && refused * 3 >= cases,
        "the generator drifted: {accepted} accepted and {refused} refused of {cases}"
    );
    // Through the CLI: refusals exit 2 and every error line is located.
    let dir = tempfile::tempdir()?;
    for text in &refused_sample {
        std::fs::write(dir.path().join("c.yaml"), text)?;
        let (code, said) = provision(dir.path(), &["check", "c.yaml"])?;
        ensure!(
            code == 2,
            "check exited {code}, want 2:\n{said}\nfor:\n{text}"
        );
        for line in said.lines().filter(|l| l.starts_with("  c.yaml")) {
            let loc: Vec<&str> = line.trim_start().splitn(4, ':').collect();
            ensure!(
                loc.len() == 4 && loc[1].parse::<u32>().is_ok() && loc[2].parse::<u32>().is_ok(),
                "unlocated: {line}"
            );
        }
    }
    // Accepted files render and pass the validators (the slow ones for the first few).
    for (i, (k, text)) in accepted_sample.iter().enumerate() {
        let d = tempfile::tempdir()?;
        validate_rendered(d.path(), text, i < 3)
            .with_context(|| format!("accepted file of kind {k}"))?;
    }
    eprintln!(
        "spec fuzz: {} refusals exit 2 with locations through the CLI; {} accepted files of {} kinds rendered and validated",
        refused_sample.len(),
        accepted_sample.len(),
        accepted_sample.len()
    );
    Ok(())
}
