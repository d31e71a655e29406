//! Auth: cairn authenticates clients by mutual TLS only, so every etcd Auth RPC answers Unimplemented
//! with a message that says so. (etcd-client does not export every Auth message type, so this is a
//! plain gRPC service for the whole `etcdserverpb.Auth` path rather than the generated trait.)

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

/// Answers every `etcdserverpb.Auth/*` call with Unimplemented.
#[derive(Clone, Debug, Default)]
pub struct AuthService;

impl NamedService for AuthService {
    const NAME: &'static str = "etcdserverpb.Auth";
}

impl tower::Service<http::Request<Body>> for AuthService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let status = super::to_status(super::status::ApiError::Unimplemented(format!(
            "cairn: Auth.{method} is not implemented: cairn has no users or roles; clients authenticate \
             with TLS client certificates (--client-cert-auth --trusted-ca-file)"
        )));
        ready(Ok(status.into_http()))
    }
}
