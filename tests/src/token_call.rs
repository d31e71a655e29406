//! gRPC calls carrying a token of the test's choosing (etcd-client only takes a user and password and
//! logs in by itself): log in at one member, show the token to another, or show a garbled one. Over
//! the cluster's mutual TLS with the `admin` certificate; a token in the metadata outranks the
//! certificate's name, in etcd and cairn alike.

use anyhow::{Context, Result};
use etcd_client::proto::{
    PbAuthenticateRequest, PbAuthenticateResponse, PbPutRequest, PbPutResponse,
};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::pki::Pki;

/// A connection to the member at `url`, for calls made later without a handshake's delay.
pub async fn channel(pki: &Pki, url: &str) -> Result<Channel> {
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&pki.ca)?))
        .identity(Identity::from_pem(
            read(&pki.admin.crt)?,
            read(&pki.admin.key)?,
        ));
    let ch = Channel::from_shared(url.to_string())?
        .tls_config(tls)?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(ch)
}

async fn unary<Q, A>(
    ch: Channel,
    path: &'static str,
    token: Option<&str>,
    message: Q,
) -> Result<std::result::Result<A, tonic::Status>>
where
    Q: prost::Message + Send + Sync + 'static,
    A: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.context("gRPC channel not ready")?;
    let mut req = tonic::Request::new(message);
    if let Some(t) = token {
        req.metadata_mut().insert("token", t.parse()?);
    }
    let codec = tonic_prost::ProstCodec::<Q, A>::default();
    let answer = grpc
        .unary(req, PathAndQuery::from_static(path), codec)
        .await;
    Ok(answer.map(tonic::Response::into_inner))
}

/// Log in at the member at `url`: its token, or its refusal.
pub async fn authenticate(
    pki: &Pki,
    url: &str,
    user: &str,
    password: &str,
) -> Result<std::result::Result<String, tonic::Status>> {
    let req = PbAuthenticateRequest {
        name: user.into(),
        password: password.into(),
    };
    let answer: std::result::Result<PbAuthenticateResponse, _> = unary(
        channel(pki, url).await?,
        "/etcdserverpb.Auth/Authenticate",
        None,
        req,
    )
    .await?;
    Ok(answer.map(|a| a.token))
}

/// Put `key` through the member at `url` with `token`: Ok, or the member's refusal.
pub async fn put(
    pki: &Pki,
    url: &str,
    token: &str,
    key: &str,
) -> Result<std::result::Result<(), tonic::Status>> {
    put_on(channel(pki, url).await?, token, key).await
}

/// Put `key` over the open connection `ch` with `token`: Ok, or the member's refusal.
pub async fn put_on(
    ch: Channel,
    token: &str,
    key: &str,
) -> Result<std::result::Result<(), tonic::Status>> {
    let req = PbPutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let answer: std::result::Result<PbPutResponse, _> =
        unary(ch, "/etcdserverpb.KV/Put", Some(token), req).await?;
    Ok(answer.map(drop))
}
