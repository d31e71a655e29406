//! Reading certificates and keys (no knowledge of the cluster file): what a certificate says, whether it
//! signed another, whether a key is its own. Used by `spec` to check an imported CA and by `pki`.

use std::net::IpAddr;

use rcgen::KeyPair;
use time::OffsetDateTime;

/// A certificate or key that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct X509Error(pub String);

/// What `inspect_pem` reads from a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject DN as text.
    pub subject: String,
    /// SANs: DNS names and IPs as text.
    pub sans: Vec<String>,
    /// Extended key usages (serverAuth, clientAuth).
    pub ekus: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// DER of the certificate.
    pub der: Vec<u8>,
}

/// Parse the first certificate of a PEM text.
pub fn inspect_pem(pem_text: &str) -> Result<CertInfo, X509Error> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| X509Error(format!("not a PEM certificate: {e}")))?;
    inspect_der(&pem.contents)
}

fn inspect_der(der: &[u8]) -> Result<CertInfo, X509Error> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| X509Error(format!("not an X.509 certificate: {e}")))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => sans.push(
                        IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string(),
                    ),
                    16 => sans.push(
                        IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let mut ekus = Vec::new();
    if let Ok(Some(e)) = cert.extended_key_usage() {
        if e.value.server_auth {
            ekus.push("serverAuth".to_string());
        }
        if e.value.client_auth {
            ekus.push("clientAuth".to_string());
        }
    }
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        sans,
        ekus,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_ca,
        der: der.to_vec(),
    })
}

/// Whether `key_pem` is the private key of `cert` (the public key it derives is the certificate's).
pub fn key_matches(cert: &CertInfo, key_pem: &str) -> Result<bool, X509Error> {
    let key =
        KeyPair::from_pem(key_pem).map_err(|e| X509Error(format!("not a PEM private key: {e}")))?;
    let (_, c) = x509_parser::parse_x509_certificate(&cert.der)
        .map_err(|e| X509Error(format!("not an X.509 certificate: {e}")))?;
    Ok(c.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// Whether `leaf` is signed by `ca` (signature check with the CA's public key).
pub fn signed_by(leaf: &CertInfo, ca: &CertInfo) -> bool {
    let (Ok((_, l)), Ok((_, c))) = (
        x509_parser::parse_x509_certificate(&leaf.der),
        x509_parser::parse_x509_certificate(&ca.der),
    ) else {
        return false;
    };
    l.verify_signature(Some(c.public_key())).is_ok()
}
