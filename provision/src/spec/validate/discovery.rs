//! The discovery cluster of `bootstrap: discovery`: endpoints, token and the TLS files to reach it. The
//! cluster being bootstrapped does not exist yet, so its own CA cannot vouch for the discovery cluster: the
//! operator names that cluster's CA (and a client certificate when it checks them).

use std::path::{Path, PathBuf};

use super::super::raw::*;
use super::super::*;
use super::Collector;

pub(super) fn check_discovery(
    c: &mut Collector,
    base_dir: &Path,
    raw: Option<RawDiscovery>,
    bootstrap: Bootstrap,
    dns_given: bool,
) -> Option<Discovery> {
    let Some(d) = raw else {
        if bootstrap == Bootstrap::Discovery {
            c.error(
                Rule::DiscoveryWithoutSection,
                "cluster.discovery",
                "bootstrap: discovery needs the discovery cluster's endpoints and a token".into(),
                "add `discovery: { endpoints: [https://10.0.9.1:2379], token: <token>, ca: discovery-ca.crt }` \
                 under `cluster:`",
            );
        }
        return None;
    };
    if bootstrap != Bootstrap::Discovery {
        c.error(
            Rule::DiscoveryNotBootstrap,
            "cluster.discovery",
            format!(
                "a discovery section is given but bootstrap is `{bootstrap}`: it would be ignored"
            ),
            "set `bootstrap: discovery`, or remove `discovery:`",
        );
    }
    if bootstrap == Bootstrap::Discovery && dns_given {
        c.error(
            Rule::DiscoveryWithDns,
            "cluster.dns",
            "`dns:` is given with `bootstrap: discovery`: cairn takes one bootstrap mechanism (etcd: \
             \"multiple discovery or bootstrap flags are set\")"
                .into(),
            "remove `dns:`, or use `bootstrap: dns` without `discovery:`",
        );
    }
    let before = c.errors.len();
    if d.endpoints.is_empty() && c.positions.contains_key("cluster.discovery.endpoints") {
        c.error(
            Rule::DiscoveryNoEndpoints,
            "cluster.discovery.endpoints",
            "the discovery cluster has no endpoints".into(),
            "list its client URLs, e.g. [https://10.0.9.1:2379, https://10.0.9.2:2379]",
        );
    }
    let mut endpoints = Vec::new();
    for (field, e) in &d.endpoints {
        match endpoint(e) {
            Ok(url) => endpoints.push(url),
            Err(why) => c.error(
                Rule::BadDiscoveryEndpoint,
                field,
                format!("{e:?} is not a discovery endpoint: {why}"),
                "write a client URL of the discovery cluster, e.g. https://10.0.9.1:2379",
            ),
        }
    }
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https != 0 && https != endpoints.len() {
        c.error(
            Rule::DiscoveryMixedSchemes,
            "cluster.discovery.endpoints",
            "the endpoints mix http:// and https://: members reach the discovery cluster either with TLS \
             or without"
                .into(),
            "use the scheme the discovery cluster serves on every endpoint",
        );
    }
    let token = d.token.unwrap_or_default();
    if c.positions.contains_key("cluster.discovery.token")
        && (token.is_empty() || token.contains('/') || token.chars().any(char::is_whitespace))
    {
        c.error(
            Rule::BadDiscoveryToken,
            "cluster.discovery.token",
            format!("token {token:?} cannot name a registry (/_etcd/registry/<token>/)"),
            "use a unique word without `/` or blanks per cluster, e.g. the output of `uuidgen`",
        );
    }
    let file = |c: &mut Collector, name: &str, given: &Option<String>, marker: &str| {
        let given = given.as_ref()?;
        let path = base_dir.join(given);
        let field = format!("cluster.discovery.{name}");
        match std::fs::read_to_string(&path) {
            Ok(text) if text.contains(marker) => Some(path),
            Ok(_) => {
                c.error(
                    Rule::DiscoveryFileUnreadable,
                    &field,
                    format!(
                        "{} has no PEM `{}` block",
                        path.display(),
                        marker.trim_matches('-')
                    ),
                    "point it at the PEM file the discovery cluster's administrator gave you",
                );
                None
            }
            Err(e) => {
                c.error(
                    Rule::DiscoveryFileUnreadable,
                    &field,
                    format!("cannot read {}: {e}", path.display()),
                    "paths are relative to the cluster file; point it at the PEM file",
                );
                None
            }
        }
    };
    let ca = file(c, "ca", &d.ca, "-----BEGIN CERTIFICATE-----");
    let cert = file(c, "cert", &d.cert, "-----BEGIN CERTIFICATE-----");
    let key = file(c, "key", &d.key, "PRIVATE KEY-----");
    if d.cert.is_some() != d.key.is_some() {
        let (given, missing) = if d.cert.is_some() {
            ("cert", "key")
        } else {
            ("key", "cert")
        };
        c.error(
            Rule::DiscoveryCertWithoutKey,
            &format!("cluster.discovery.{given}"),
            format!("`{given}` is given without `{missing}` (cairn's --discovery-cert and --discovery-key go together)"),
            &format!("add `{missing}:`, or remove `{given}:`"),
        );
    }
    if !endpoints.is_empty() && https == endpoints.len() && d.ca.is_none() {
        c.error(
            Rule::DiscoveryTlsMismatch,
            "cluster.discovery.ca",
            "the discovery endpoints are https:// but no CA is given to verify them (the cluster's own CA \
             does not exist yet and did not sign the discovery cluster)"
                .into(),
            "add `ca:` with the discovery cluster's CA certificate (its trusted-ca-file)",
        );
    }
    if https == 0 && !endpoints.is_empty() && (d.ca.is_some() || d.cert.is_some()) {
        let field = if d.ca.is_some() { "ca" } else { "cert" };
        c.error(
            Rule::DiscoveryTlsMismatch,
            &format!("cluster.discovery.{field}"),
            "TLS files are given but the discovery endpoints are http://: they would not be used"
                .into(),
            "write the endpoints as https://, or remove `ca`, `cert` and `key`",
        );
    }
    if c.errors.len() != before {
        return None;
    }
    let client: Option<(PathBuf, PathBuf)> = cert.zip(key);
    Some(Discovery {
        endpoints,
        token,
        ca,
        client,
    })
}

/// `scheme://host:port` (a trailing `/` dropped), or why not.
fn endpoint(e: &str) -> Result<String, String> {
    let e = e.trim().trim_end_matches('/');
    let Some((scheme, rest)) = e.split_once("://") else {
        return Err("no http:// or https:// in front".into());
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} (only http and https)"));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(
            "a path, query or user part after the host (the token goes in `token:`)".into(),
        );
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err("no port (etcd's client port is usually 2379)".into());
    };
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("no host".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(e.to_string()),
        _ => Err(format!("port {port:?} is not a number from 1 to 65535")),
    }
}
