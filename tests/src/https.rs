//! HTTPS GETs of a member's HTTP endpoints (/health, /metrics) with the real curl, over mutual TLS with
//! the cluster's `admin` certificate, as a load balancer's probe or Prometheus would make them.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::pki::Pki;
use crate::tools::require;

/// GET `url`; returns the HTTP status code and the body.
pub fn get(pki: &Pki, url: &str) -> Result<(u16, String)> {
    let curl = require("curl", "curl")?;
    let out = Command::new(curl)
        .args(["--silent", "--show-error", "--max-time", "5"])
        .arg("--cacert")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.admin.crt)
        .arg("--key")
        .arg(&pki.admin.key)
        .args(["--write-out", "\n%{http_code}", url])
        .output()
        .with_context(|| format!("running curl {url}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some((body, code)) = text.rsplit_once('\n') else {
        bail!(
            "curl {url} printed no status: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let code = code.trim().parse().with_context(|| {
        format!(
            "curl {url}: status {code:?}; {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((code, body.to_string()))
}
