//! etcd's access controller in front of the client port's HTTP side (`/version`, `/health`,
//! `/metrics`, the JSON gateway; embed/serve.go): on plain-HTTP connections the Host must be one of
//! `--host-whitelist` (DNS rebinding, CVE-2018-5702: 421 otherwise); responses carry CORS headers for
//! the origins of `--cors` (every origin by default, as `*`); OPTIONS (a browser's preflight) is
//! answered 200 right here.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Marks a request that came over TLS (the host whitelist only guards plain HTTP).
#[derive(Debug, Clone, Copy)]
pub struct Secure;

/// An allow-list from a flag: empty or `*` allows everything.
#[derive(Debug, Clone)]
enum Allow {
    All,
    Only(BTreeSet<String>),
}

impl Allow {
    fn from_flag(values: &[String]) -> Allow {
        let set: BTreeSet<String> = values
            .iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if set.is_empty() || set.contains("*") {
            Allow::All
        } else {
            Allow::Only(set)
        }
    }

    fn allows(&self, value: &str) -> bool {
        match self {
            Allow::All => true,
            Allow::Only(set) => set.contains(value),
        }
    }
}

/// The two allow-lists, from `--cors` and `--host-whitelist`.
#[derive(Debug, Clone)]
pub struct Access {
    cors: Allow,
    hosts: Allow,
}

impl Access {
    /// From the flags' values (each comma-separated list already split).
    pub fn new(cors: &[String], host_whitelist: &[String]) -> Self {
        Access {
            cors: Allow::from_flag(cors),
            hosts: Allow::from_flag(host_whitelist),
        }
    }

    /// Wraps `router` in the access checks.
    pub fn layer(self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(
            Arc::new(self),
            control,
        ))
    }
}

/// The methods and headers etcd allows cross-origin.
const ALLOW_METHODS: &str = "POST, GET, OPTIONS, PUT, DELETE";
const ALLOW_HEADERS: &str = "accept, content-type, authorization";

async fn control(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if req.extensions().get::<Secure>().is_none() {
        let host = hostname(&req);
        if !access.hosts.allows(&host) {
            tracing::warn!(%host, "rejecting HTTP request to prevent DNS rebinding attacks");
            return misdirected(&host);
        }
    }
    let origin = match &access.cors {
        Allow::All => Some(HeaderValue::from_static("*")),
        Allow::Only(_) => req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| o.to_str().is_ok_and(|o| access.cors.allows(o)))
            .cloned(),
    };
    let mut res = if req.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.append(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.append(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
    }
    res
}

/// The request's host name without the port, as Go's `httputil.GetHostname` reads it (HTTP/2's
/// authority, else the Host header; kept whole when it has no port).
fn hostname(req: &Request) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    strip_port(&host).to_string()
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once("]:").map_or(host, |(h, _)| h);
    }
    match host.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => host,
    }
}

/// 421 Misdirected Request naming the host and the flag that admits it.
fn misdirected(host: &str) -> Response {
    let body = format!(
        "\ncairn received your request, but the Host header was unrecognized.\n\n\
         To fix this, either enable TLS (any HTTPS request is allowed), or add the host name to the \
         whitelist:\n  cairn --host-whitelist {host:?}\n\n\
         This check prevents DNS rebinding attacks (CVE-2018-5702).\n\n"
    );
    (
        StatusCode::MISDIRECTED_REQUEST,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_as_go_reads_them() {
        assert_eq!(strip_port("example.com:2379"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:2379"), "::1");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn empty_or_star_allows_every_origin() {
        assert!(Allow::from_flag(&[]).allows("http://a"));
        assert!(Allow::from_flag(&["*".into()]).allows("http://a"));
        assert!(Allow::from_flag(&["".into()]).allows("http://a"));
        let only = Allow::from_flag(&["http://a".into(), " http://b".into()]);
        assert!(only.allows("http://b") && !only.allows("http://c"));
    }
}
