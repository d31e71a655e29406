//! Certificates for a test cluster: rendered by the real `provision render` (the default), or made here
//! with rcgen in the same layout (CA, per-member server/peer certs, an `admin` client cert): on request
//! for the tests, always for the benchmark and the chaos harness, which run without a debug `provision`.

use crate::workspace;
use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One member's certificate files.
#[derive(Debug, Clone)]
pub struct MemberCerts {
    /// Client-facing serving certificate (`--cert-file`).
    pub server_crt: PathBuf,
    /// Its key (`--key-file`).
    pub server_key: PathBuf,
    /// Peer certificate (`--peer-cert-file`).
    pub peer_crt: PathBuf,
    /// Its key (`--peer-key-file`).
    pub peer_key: PathBuf,
    /// CA that peers and clients must chain to (`--trusted-ca-file`, `--peer-trusted-ca-file`).
    pub ca: PathBuf,
}

/// A client identity's certificate and key.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// Certificate (`--cert`).
    pub crt: PathBuf,
    /// Key (`--key`).
    pub key: PathBuf,
}

/// The whole PKI of one test cluster.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The cluster CA certificate (`--cacert` for clients).
    pub ca: PathBuf,
    /// Per member, in member order.
    pub members: Vec<MemberCerts>,
    /// The `admin` client identity.
    pub admin: ClientCert,
    /// Which tool made the certificates ("provision render" or "rcgen").
    pub made_by: &'static str,
}

/// What the PKI needs to know about a member.
#[derive(Debug, Clone)]
pub struct PkiMember {
    /// Member name.
    pub name: String,
    /// The IP address its URLs carry (a SAN of its certificates).
    pub address: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
}

impl Pki {
    /// Makes the PKI under `dir` for a cluster named `cluster` with these members.
    ///
    /// Uses the real `provision render` (an error if it is not built or fails); `CAIRN_TEST_PKI=rcgen`
    /// makes the same layout with rcgen instead, for working on the harness while provision is broken.
    pub fn create(dir: &Path, cluster: &str, members: &[PkiMember]) -> Result<Pki> {
        let choice = std::env::var("CAIRN_TEST_PKI").unwrap_or_default();
        match choice.as_str() {
            "rcgen" => Pki::generate(dir, members),
            "" | "provision" => Pki::render(dir, cluster, members),
            other => bail!("CAIRN_TEST_PKI={other:?} is not one of provision, rcgen"),
        }
    }

    /// Writes a cluster.yaml in the agreed schema and runs `provision render` on it.
    pub fn render(dir: &Path, cluster: &str, members: &[PkiMember]) -> Result<Pki> {
        let provision = workspace::binary("provision")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut yaml = format!(
            "cluster:\n  name: {cluster}\n  token: {cluster}\n  bootstrap: static\n  transport: local\n  \
             data_dir: {data}\n  config_dir: {dir}\ntls:\n  enabled: true\n  key_algorithm: ecdsa-p256\n  clients: [admin]\n\
             firewall:\n  backend: none\nnodes:\n",
            data = dir.join("data").display(),
            dir = dir.display(),
        );
        for m in members {
            let _ = writeln!(
                yaml,
                "  - name: {}\n    address: {}\n    client_port: {}\n    peer_port: {}",
                m.name, m.address, m.client_port, m.peer_port
            );
        }
        let spec = dir.join("cluster.yaml");
        std::fs::write(&spec, yaml).with_context(|| format!("writing {}", spec.display()))?;
        let out = dir.join("rendered");
        let run = Command::new(&provision)
            .arg("render")
            .arg(&spec)
            .arg("-o")
            .arg(&out)
            .output()
            .with_context(|| format!("running {}", provision.display()))?;
        if !run.status.success() {
            bail!(
                "provision render {} failed ({}):\n{}{}",
                spec.display(),
                run.status,
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            );
        }
        let pki = Pki {
            ca: out.join("pki/ca.crt"),
            members: members
                .iter()
                .map(|m| {
                    let p = out.join("nodes").join(&m.name).join("pki");
                    MemberCerts {
                        server_crt: p.join("server.crt"),
                        server_key: p.join("server.key"),
                        peer_crt: p.join("peer.crt"),
                        peer_key: p.join("peer.key"),
                        ca: p.join("ca.crt"),
                    }
                })
                .collect(),
            admin: ClientCert {
                crt: out.join("pki/clients/admin.crt"),
                key: out.join("pki/clients/admin.key"),
            },
            made_by: "provision render",
        };
        pki.check_files_exist()?;
        Ok(pki)
    }

    /// Makes the same layout with rcgen: one ECDSA P-256 CA, node certs with SANs of the member's
    /// address, 127.0.0.1, ::1, localhost and both EKUs, and an `admin` client certificate.
    pub fn generate(dir: &Path, members: &[PkiMember]) -> Result<Pki> {
        let pki_dir = dir.join("pki");
        std::fs::create_dir_all(&pki_dir)
            .with_context(|| format!("creating {}", pki_dir.display()))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "cairn test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let ca_path = pki_dir.join("ca.crt");
        write_file(&ca_path, &ca.pem(), false)?;

        let leaf =
            |cn: &str, sans: Vec<String>, ekus: Vec<ExtendedKeyUsagePurpose>, stem: &Path| {
                let mut params = CertificateParams::new(sans)?;
                params.distinguished_name.push(DnType::CommonName, cn);
                params.extended_key_usages = ekus;
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                let key = KeyPair::generate()?;
                let cert = params.signed_by(&key, &ca)?;
                let crt = stem.with_extension("crt");
                let key_path = stem.with_extension("key");
                write_file(&crt, &cert.pem(), false)?;
                write_file(&key_path, &key.serialize_pem(), true)?;
                anyhow::Ok((crt, key_path))
            };
        let both = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let sans = |m: &PkiMember| {
            let mut v = vec![
                "127.0.0.1".to_string(),
                "::1".to_string(),
                "localhost".to_string(),
            ];
            if !v.contains(&m.address) {
                v.push(m.address.clone());
            }
            v
        };
        let mut certs = Vec::new();
        for m in members {
            let node_dir = pki_dir.join(&m.name);
            std::fs::create_dir_all(&node_dir)?;
            let (server_crt, server_key) =
                leaf(&m.name, sans(m), both.clone(), &node_dir.join("server"))?;
            let (peer_crt, peer_key) =
                leaf(&m.name, sans(m), both.clone(), &node_dir.join("peer"))?;
            certs.push(MemberCerts {
                server_crt,
                server_key,
                peer_crt,
                peer_key,
                ca: ca_path.clone(),
            });
        }
        let (crt, key) = leaf(
            "admin",
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            &pki_dir.join("admin"),
        )?;
        Ok(Pki {
            ca: ca_path,
            members: certs,
            admin: ClientCert { crt, key },
            made_by: "rcgen",
        })
    }

    fn check_files_exist(&self) -> Result<()> {
        let mut paths = vec![&self.ca, &self.admin.crt, &self.admin.key];
        for m in &self.members {
            paths.extend([
                &m.server_crt,
                &m.server_key,
                &m.peer_crt,
                &m.peer_key,
                &m.ca,
            ]);
        }
        for p in paths {
            if !p.is_file() {
                bail!(
                    "expected certificate file {} is missing from the rendered output",
                    p.display()
                );
            }
        }
        Ok(())
    }
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    if secret {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
    }
    Ok(())
}
