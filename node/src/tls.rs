//! rustls configurations built from the certificate flags: the client-port and peer-port servers, and the
//! peer client that presents this member's peer certificate. Errors name the flag and the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate flag whose file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--{flag} {path}: cannot read certificates: {msg}")]
    Certs {
        flag: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("--{flag} {path}: cannot read a private key: {msg}")]
    Key {
        flag: &'static str,
        path: PathBuf,
        msg: String,
    },
    #[error("TLS setup with --{flag}: {msg}")]
    Config { flag: &'static str, msg: String },
}

/// Certificate files for one side (client port or peer port).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Flag prefix used in messages: "" or "peer-".
    pub prefix: &'static str,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub client_cert_auth: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn flag(prefix: &str, name: &'static str) -> &'static str {
    match (prefix, name) {
        ("peer-", "cert-file") => "peer-cert-file",
        ("peer-", "key-file") => "peer-key-file",
        ("peer-", "trusted-ca-file") => "peer-trusted-ca-file",
        _ => name,
    }
}

fn load_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |msg: String| TlsError::Certs {
        flag,
        path: path.to_path_buf(),
        msg,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        flag,
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn load_roots(flag: &'static str, path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(flag, path)? {
        roots.add(c).map_err(|e| TlsError::Certs {
            flag,
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

impl TlsFiles {
    fn cert_and_key(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Ok(Some((
                load_certs(flag(self.prefix, "cert-file"), c)?,
                load_key(flag(self.prefix, "key-file"), k)?,
            ))),
            _ => Ok(None),
        }
    }

    /// The server config for https listeners, or None when no certificate is configured (plain http).
    /// With client-cert-auth a client must present a certificate signed by the trusted CA, else the
    /// handshake fails.
    pub fn server_config(&self) -> Result<Option<Arc<ServerConfig>>, TlsError> {
        let Some((certs, key)) = self.cert_and_key()? else {
            return Ok(None);
        };
        let cfg_err = |e: rustls::Error| TlsError::Config {
            flag: flag(self.prefix, "cert-file"),
            msg: e.to_string(),
        };
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?;
        let builder = match &self.ca {
            Some(ca) => {
                let roots = load_roots(flag(self.prefix, "trusted-ca-file"), ca)?;
                let v = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let v = if self.client_cert_auth {
                    v
                } else {
                    v.allow_unauthenticated()
                };
                let v = v.build().map_err(|e| TlsError::Config {
                    flag: flag(self.prefix, "trusted-ca-file"),
                    msg: e.to_string(),
                })?;
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_single_cert(certs, key).map_err(cfg_err)?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(cfg)))
    }

    /// The client config a member uses to dial other members: verifies them against the trusted CA and
    /// presents this member's certificate. None when no CA is configured (plain http peers).
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, TlsError> {
        let Some(ca) = &self.ca else { return Ok(None) };
        let roots = load_roots(flag(self.prefix, "trusted-ca-file"), ca)?;
        let cfg_err = |e: rustls::Error| TlsError::Config {
            flag: flag(self.prefix, "cert-file"),
            msg: e.to_string(),
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfg_err)?
            .with_root_certificates(roots);
        let mut cfg = match self.cert_and_key()? {
            Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(cfg_err)?,
            None => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(Arc::new(cfg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_cert_names_flag_and_file() {
        let files = TlsFiles {
            prefix: "peer-",
            cert: Some("/nonexistent/peer.pem".into()),
            key: Some("/nonexistent/peer-key.pem".into()),
            ..Default::default()
        };
        let e = files.server_config().unwrap_err().to_string();
        assert!(
            e.starts_with("--peer-cert-file /nonexistent/peer.pem"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_needs_no_config() {
        assert!(TlsFiles::default().server_config().unwrap().is_none());
        assert!(TlsFiles::default().client_config().unwrap().is_none());
    }
}
