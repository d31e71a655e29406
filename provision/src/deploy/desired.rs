//! The files a host should have, where they come from, and what a change to each one requires; compared
//! by sha256 (manifest.json for rendered files) with what the host has, so only changed files travel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::target::{ServiceMode, Target, FIREWALL_UNIT_PATH, UNIT_PATH};
use super::transport::quote;
use crate::spec::FirewallBackend;

/// Where a file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on this machine (rendered output or the cairn binary).
    File(PathBuf),
    /// Generated here.
    Inline(Vec<u8>),
}

/// What must happen after a file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// cairn reads it at start: restart the member.
    Restart,
    /// A unit file: daemon-reload, then restart the member.
    Unit,
    /// rsyslog rule: restart rsyslog.
    Rsyslog,
    /// Firewall rules: load them.
    Firewall,
    /// Read by its tool when it runs (logrotate).
    Nothing,
}

/// One file the host should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Absolute (or, for local members, cwd-relative) path on the host.
    pub remote: String,
    /// Content source.
    pub source: Source,
    /// sha256 of the content.
    pub sha256: String,
    /// sha256 of what a running member depends on: the content, except in the env file the
    /// `CAIRN_INITIAL_*` lines, which cairn reads only at its first start (so growing the cluster, which
    /// changes `CAIRN_INITIAL_CLUSTER` everywhere, restarts nobody).
    pub restart_sha: String,
    /// Unix mode.
    pub mode: u32,
    /// `user:group`, when the host is managed as root.
    pub owner: Option<String>,
    /// What a change requires.
    pub effect: Effect,
}

impl Desired {
    /// The content to upload.
    pub fn bytes(&self) -> std::io::Result<Vec<u8>> {
        match &self.source {
            Source::File(p) => std::fs::read(p),
            Source::Inline(b) => Ok(b.clone()),
        }
    }
}

/// `path → sha256` from `out/manifest.json`.
pub fn read_manifest(out: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = out.join(crate::manifest::NAME);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (render first)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", path.display()))?;
    Ok(v["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    Some((
                        e["path"].as_str()?.to_string(),
                        e["sha256"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// sha256 of bytes, hex.
pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// sha256 of a file, hex. Uses coreutils' `sha256sum` when present: the binary is large (a debug build is
/// ~200 MB) and an unoptimized build of this crate hashes it several times slower.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    if let Ok(out) = std::process::Command::new("sha256sum").arg(path).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(sum) = text
            .split_whitespace()
            .next()
            .filter(|s| s.len() == 64 && out.status.success())
        {
            return Ok(sum.to_string());
        }
    }
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// During a CA rotation (`certs --rotate-ca`), a host that does not trust the new CA yet keeps its old
/// certificates for this pass: its new trust bundle (old + new CA) is rolled first, and the leaves signed by
/// the new CA follow in a second pass, once every member trusts both. Rolling both at once would make each
/// restarted member present a certificate its not-yet-restarted peers refuse. Files kept back are given the
/// host's own hash (so the start fingerprint is what the host really runs) and their paths are returned.
pub fn hold_back_new_leaves(files: &mut [Desired], have: &BTreeMap<String, String>) -> Vec<String> {
    let differs = |d: &Desired| have.get(&d.remote).is_some_and(|h| h != &d.sha256);
    let trust_changes = files
        .iter()
        .any(|d| d.remote.ends_with("/pki/ca.crt") && differs(d));
    if !trust_changes {
        return Vec::new();
    }
    let leaf = |r: &str| {
        ["server.crt", "server.key", "peer.crt", "peer.key"]
            .iter()
            .any(|f| r.ends_with(&format!("/pki/{f}")))
    };
    let mut held = Vec::new();
    for d in files.iter_mut().filter(|d| leaf(&d.remote)) {
        if let Some(old) = have.get(&d.remote).filter(|h| *h != &d.sha256) {
            d.sha256 = old.clone();
            d.restart_sha = old.clone();
            held.push(d.remote.clone());
        }
    }
    held
}

/// The oneshot unit that loads the nftables file at boot, before cairn starts.
fn firewall_unit(nft_file: &str) -> String {
    format!(
        "# Rendered by provision apply: loads Cairn's own nftables table (inet cairn) before cairn starts.\n\
         [Unit]\nDescription=Cairn firewall rules (table inet cairn)\nBefore=cairn.service\n\
         Wants=network-pre.target\nAfter=network-pre.target\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/usr/sbin/nft -f {nft_file}\nExecStop=/usr/sbin/nft delete table inet cairn\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

/// Where the container drop-in goes.
pub const CONTAINER_DROPIN: &str =
    "/etc/systemd/system/cairn.service.d/20-provision-container.conf";

/// Relaxes the one sandbox setting systemd cannot provide inside a container: it fails to set up the user
/// namespace `PrivateUsers=yes` asks for ("Failed to set up user namespacing", exit 217/USER).
fn container_dropin(container: &str) -> String {
    format!(
        "# Written by provision apply: this host is a container ({container}), where systemd cannot set up the
         # user namespace of PrivateUsers=yes. Every other sandbox setting of cairn.service stays.
         [Service]
PrivateUsers=no
"
    )
}

/// Every file `target` should have, from the render directory `out` (whose manifest is `manifest`);
/// `container` names the container technology when the host is one.
pub fn for_target(
    target: &Target,
    out: &Path,
    manifest: &BTreeMap<String, String>,
    binary: (&Path, &str),
    container: Option<&str>,
) -> Vec<Desired> {
    let (binary, binary_sha) = binary;
    let prefix = format!("nodes/{}/", target.name);
    let systemd = target.mode == ServiceMode::Systemd;
    let owner = |o: &str| systemd.then(|| o.to_string());
    let mut v = Vec::new();
    for (rel, sha) in manifest.iter().filter(|(p, _)| p.starts_with(&prefix)) {
        let local = rel[prefix.len()..].to_string();
        let (remote, mode, own, effect) = if local == "cairn.env" {
            (
                target.env_file.clone(),
                0o644,
                owner("root:root"),
                Effect::Restart,
            )
        } else if let Some(f) = local.strip_prefix("pki/") {
            let secret = f.ends_with(".key");
            let mode = if secret { 0o600 } else { 0o644 };
            (
                format!("{}/pki/{f}", target.config_dir),
                mode,
                owner("cairn:cairn"),
                Effect::Restart,
            )
        } else if !systemd {
            // A supervised process uses only its env file and certificates.
            continue;
        } else if local == "systemd/cairn.service" {
            (UNIT_PATH.into(), 0o644, owner("root:root"), Effect::Unit)
        } else if local == "rsyslog/30-cairn.conf" {
            (
                "/etc/rsyslog.d/30-cairn.conf".into(),
                0o644,
                owner("root:root"),
                Effect::Rsyslog,
            )
        } else if local == "logrotate/cairn" {
            (
                "/etc/logrotate.d/cairn".into(),
                0o644,
                owner("root:root"),
                Effect::Nothing,
            )
        } else if let Some(f) = local.strip_prefix("firewall/") {
            (
                target.firewall_file(f),
                0o644,
                owner("root:root"),
                Effect::Firewall,
            )
        } else {
            continue;
        };
        let restart_sha = if local == "cairn.env" {
            std::fs::read_to_string(out.join(rel))
                .map(|t| {
                    let kept: Vec<&str> = t
                        .lines()
                        .filter(|l| !l.starts_with("CAIRN_INITIAL_"))
                        .collect();
                    sha256(kept.join("\n").as_bytes())
                })
                .unwrap_or_else(|_| sha.clone())
        } else {
            sha.clone()
        };
        v.push(Desired {
            remote,
            source: Source::File(out.join(rel)),
            sha256: sha.clone(),
            restart_sha,
            mode,
            owner: own,
            effect,
        });
    }
    if systemd {
        v.push(Desired {
            remote: target.binary.clone(),
            source: Source::File(binary.to_path_buf()),
            sha256: binary_sha.to_string(),
            restart_sha: binary_sha.to_string(),
            mode: 0o755,
            owner: owner("root:root"),
            effect: Effect::Restart,
        });
        if let Some(c) = container {
            let dropin = container_dropin(c).into_bytes();
            v.push(Desired {
                remote: CONTAINER_DROPIN.into(),
                sha256: sha256(&dropin),
                restart_sha: sha256(&dropin),
                source: Source::Inline(dropin),
                mode: 0o644,
                owner: owner("root:root"),
                effect: Effect::Unit,
            });
        }
        if target.firewall == FirewallBackend::Nftables {
            let unit = firewall_unit(&target.firewall_file("cairn.nft")).into_bytes();
            v.push(Desired {
                remote: FIREWALL_UNIT_PATH.into(),
                sha256: sha256(&unit),
                restart_sha: sha256(&unit),
                source: Source::Inline(unit),
                mode: 0o644,
                owner: owner("root:root"),
                effect: Effect::Firewall,
            });
        }
    }
    v
}

/// What the member is started with: the files it reads and the binary. Stored on the host after each
/// (re)start; a difference later means the running process is stale.
pub fn fingerprint(files: &[Desired], binary_sha: &str) -> String {
    let mut parts: Vec<String> = files
        .iter()
        .filter(|d| matches!(d.effect, Effect::Restart | Effect::Unit))
        .map(|d| format!("{} {}", d.restart_sha, d.remote))
        .collect();
    parts.push(format!("{binary_sha} binary"));
    parts.sort();
    sha256(parts.join("\n").as_bytes())
}

/// A script printing `sha256  path` for each of `paths` that exists.
pub fn hash_script(paths: &[&str]) -> String {
    let list: Vec<String> = paths.iter().map(|p| quote(p)).collect();
    format!(
        "for f in {}; do [ -f \"$f\" ] && sha256sum \"$f\"; done; true",
        list.join(" ")
    )
}

/// Parse `sha256sum` output into `path → sha256`.
pub fn parse_hashes(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once("  ")?;
            Some((path.trim().to_string(), sum.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::service::tests_target;

    fn manifest() -> BTreeMap<String, String> {
        [
            ("nodes/infra0/cairn.env", "e"),
            ("nodes/infra0/pki/server.key", "k"),
            ("nodes/infra0/pki/server.crt", "c"),
            ("nodes/infra0/systemd/cairn.service", "u"),
            ("nodes/infra0/firewall/cairn.nft", "f"),
            ("nodes/infra1/cairn.env", "other"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn systemd_hosts_get_keys_0600_owned_by_cairn_and_the_binary() {
        let mut t = tests_target();
        t.mode = ServiceMode::Systemd;
        t.firewall = FirewallBackend::Nftables;
        t.binary = "/usr/local/bin/cairn".into();
        t.config_dir = "/etc/cairn".into();
        t.env_file = "/etc/cairn/cairn.env".into();
        let d = for_target(
            &t,
            Path::new("/o"),
            &manifest(),
            (Path::new("/b/cairn"), "bin"),
            Some("docker"),
        );
        assert!(d
            .iter()
            .any(|d| d.remote == CONTAINER_DROPIN && d.effect == Effect::Unit));
        let key = d
            .iter()
            .find(|d| d.remote == "/etc/cairn/pki/server.key")
            .expect("key");
        assert_eq!(
            (key.mode, key.owner.as_deref()),
            (0o600, Some("cairn:cairn"))
        );
        assert!(d
            .iter()
            .any(|d| d.remote == UNIT_PATH && d.effect == Effect::Unit));
        assert!(d
            .iter()
            .any(|d| d.remote == "/usr/local/bin/cairn" && d.sha256 == "bin"));
        assert!(d.iter().any(|d| d.remote == FIREWALL_UNIT_PATH));
        assert!(
            !d.iter().any(|d| d.sha256 == "other"),
            "only this member's files"
        );
    }

    #[test]
    fn local_members_get_only_env_and_certificates() {
        let t = tests_target();
        let d = for_target(
            &t,
            Path::new("/o"),
            &manifest(),
            (Path::new("/b/cairn"), "bin"),
            None,
        );
        let mut remotes: Vec<&str> = d.iter().map(|d| d.remote.as_str()).collect();
        remotes.sort();
        assert_eq!(
            remotes,
            vec![
                "out/local/nodes/infra0/cairn.env",
                "out/local/nodes/infra0/pki/server.crt",
                "out/local/nodes/infra0/pki/server.key"
            ]
        );
        assert!(d.iter().all(|d| d.owner.is_none()));
    }

    #[test]
    fn fingerprint_changes_with_the_binary_or_a_certificate_but_not_with_logrotate() {
        let t = tests_target();
        let d = for_target(
            &t,
            Path::new("/o"),
            &manifest(),
            (Path::new("/b"), "bin"),
            None,
        );
        let base = fingerprint(&d, "bin");
        assert_ne!(base, fingerprint(&d, "bin2"));
        let mut d2 = d.clone();
        d2[1].restart_sha = "changed".into();
        assert_ne!(base, fingerprint(&d2, "bin"));
        let mut d3 = d.clone();
        d3.push(Desired {
            remote: "/etc/logrotate.d/cairn".into(),
            source: Source::Inline(vec![]),
            sha256: "x".into(),
            restart_sha: "x".into(),
            mode: 0o644,
            owner: None,
            effect: Effect::Nothing,
        });
        assert_eq!(base, fingerprint(&d3, "bin"));
    }

    #[test]
    fn hashes_parse_from_sha256sum_output() {
        let h = parse_hashes("abc  /etc/cairn/cairn.env\ndef  out/x y\n");
        assert_eq!(
            h.get("/etc/cairn/cairn.env").map(String::as_str),
            Some("abc")
        );
        assert_eq!(h.get("out/x y").map(String::as_str), Some("def"));
    }

    /// What a host holds: remote path → sha256.
    fn on_host(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(path, sha)| (path.to_string(), sha.to_string()))
            .collect()
    }

    fn file(remote: &str, sha: &str) -> Desired {
        Desired {
            remote: remote.into(),
            source: Source::Inline(Vec::new()),
            sha256: sha.into(),
            restart_sha: sha.into(),
            mode: 0o600,
            owner: None,
            effect: Effect::Restart,
        }
    }

    #[test]
    fn a_rotation_rolls_the_trust_bundle_before_the_new_leaves() {
        let have = on_host(&[
            ("/etc/cairn/pki/ca.crt", "old-ca"),
            ("/etc/cairn/pki/server.crt", "old-server"),
            ("/etc/cairn/pki/peer.key", "old-peer-key"),
        ]);
        let mut files = vec![
            file("/etc/cairn/pki/ca.crt", "bundle"),
            file("/etc/cairn/pki/server.crt", "new-server"),
            file("/etc/cairn/pki/peer.key", "new-peer-key"),
            file("/etc/cairn/cairn.env", "env"),
        ];
        let held = hold_back_new_leaves(&mut files, &have);
        assert_eq!(
            held,
            ["/etc/cairn/pki/server.crt", "/etc/cairn/pki/peer.key"]
        );
        assert_eq!(files[0].sha256, "bundle", "the bundle goes out now");
        assert_eq!(files[1].sha256, "old-server");
        assert_eq!(files[1].restart_sha, "old-server");
        assert_eq!(files[2].sha256, "old-peer-key");

        // Second pass: the host trusts the bundle, so the new leaves go.
        let have = on_host(&[("/etc/cairn/pki/ca.crt", "bundle")]);
        let mut files = vec![
            file("/etc/cairn/pki/ca.crt", "bundle"),
            file("/etc/cairn/pki/server.crt", "new-server"),
        ];
        assert!(hold_back_new_leaves(&mut files, &have).is_empty());
        assert_eq!(files[1].sha256, "new-server");
    }
}
