//! A bare TLS handshake against a member's client port, to show where a refusal happens: etcdctl only
//! says its dial gave up, while this reports the TLS alert the server sent.

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The HTTP/2 connection preface; a gRPC server answers it with a SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A TLS session to `addr` (host:port, 127.0.0.1) offering HTTP/2, trusting `ca` and presenting `client`
/// if given; the handshake completes on the first write or read.
pub fn connect(
    addr: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("parsing {}", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((crt, key)) => {
            let certs = CertificateDer::pem_file_iter(crt)
                .with_context(|| format!("reading {}", crt.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("parsing {}", crt.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading {}", key.display()))?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from("127.0.0.1")?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let sock = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// Connects to `addr` (host:port, 127.0.0.1), trusting `ca`, presenting `client` if given, and talks
/// HTTP/2 until the server answers. `Ok(Ok(()))` means the server accepted us; `Ok(Err(reason))` means the
/// TLS session failed (reason holds rustls's error, e.g. the alert received); `Err` is a local problem.
pub fn handshake(
    addr: &str,
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Result<(), String>> {
    let mut tls = connect(addr, ca, client)?;
    // With TLS 1.3 the client finishes its side before the server has checked the client certificate;
    // the server's verdict arrives as an alert on the first read.
    if let Err(e) = tls.write_all(H2_PREFACE).and_then(|_| tls.flush()) {
        return Ok(Err(e.to_string()));
    }
    let mut buf = [0u8; 64];
    match tls.read(&mut buf) {
        Ok(0) => Ok(Err("connection closed without an answer".into())),
        Ok(_) => Ok(Ok(())),
        Err(e) => Ok(Err(e.to_string())),
    }
}
