//! The `etcd-client` crate as a second real client beside etcdctl, for what etcdctl cannot do: send
//! requests etcdctl would refuse before sending, half-close a stream, keep one stream open across a
//! fault, or issue many linearizable reads per second.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::pki::Pki;

/// A runtime for one test's async client code (the system tests themselves are synchronous).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building a tokio runtime for the gRPC client")
}

/// Connects to `endpoint` (one client URL) over mutual TLS with the cluster's `admin` certificate.
pub async fn connect(pki: &Pki, endpoint: &str) -> Result<Client> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&pki.ca)?))
        .identity(Identity::from_pem(
            read(&pki.admin.crt)?,
            read(&pki.admin.key)?,
        ));
    let opts = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(15));
    Client::connect([endpoint], Some(opts))
        .await
        .with_context(|| format!("connecting to {endpoint}"))
}

/// The gRPC status code (its name, e.g. `InvalidArgument`) and message of a failed call; for a
/// failure that is not a gRPC status, `not gRPC` and the error's text.
pub fn status_of(e: &etcd_client::Error) -> (String, String) {
    match e {
        etcd_client::Error::GRpcStatus(s) => (format!("{:?}", s.code()), s.message().to_string()),
        other => ("not gRPC".to_string(), other.to_string()),
    }
}
