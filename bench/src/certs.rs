//! A throw-away PKI for the benchmark clusters: one CA, one cert per member (server+client use, as etcd
//! peers need both), one client cert for the load generator and etcdctl.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::path::{Path, PathBuf};

/// Paths of a PEM cert and its key.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file the clusters and clients need.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca: PathBuf,
    pub members: Vec<CertPair>,
    pub client: CertPair,
}

/// Writes a CA, `members` member certs (SANs 127.0.0.1 and localhost) and one client cert into `dir`.
pub fn generate(dir: &Path, members: usize) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cairn-bench CA");
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the CA")?;
    let ca_path = dir.join("ca.pem");
    write(&ca_path, &ca_cert.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf =
        |name: &str, sans: Vec<String>, usages: Vec<ExtendedKeyUsagePurpose>| -> Result<CertPair> {
            let key = KeyPair::generate().context("generating a leaf key")?;
            let mut params = CertificateParams::new(sans).context("leaf params")?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = usages;
            let cert = params
                .signed_by(&key, &issuer)
                .context("signing a leaf cert")?;
            let pair = CertPair {
                cert: dir.join(format!("{name}.pem")),
                key: dir.join(format!("{name}-key.pem")),
            };
            write(&pair.cert, &cert.pem())?;
            write(&pair.key, &key.serialize_pem())?;
            Ok(pair)
        };
    let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let both = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let members = (0..members)
        .map(|i| leaf(&format!("member{i}"), sans.clone(), both.clone()))
        .collect::<Result<Vec<_>>>()?;
    let client = leaf(
        "client",
        vec!["localhost".to_string()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    Ok(Pki {
        ca: ca_path,
        members,
        client,
    })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
