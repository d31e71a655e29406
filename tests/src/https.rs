//! HTTPS requests to a member's HTTP endpoints (/health, /metrics, the JSON gateway) with the real curl,
//! over mutual TLS with the cluster's `admin` certificate, as a load balancer's probe, Prometheus or a
//! `curl` script would make them.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::pki::Pki;
use crate::tools::require;

/// GET `url`; returns the HTTP status code and the body.
pub fn get(pki: &Pki, url: &str) -> Result<(u16, String)> {
    curl(pki, &[url], 5, Exit::Any)
}

/// Which curl exits still yield an answer.
#[derive(Clone, Copy, PartialEq)]
enum Exit {
    /// Any: a refused connection reads as status 0 (probes that wait for a member to come up).
    Any,
    /// Success only.
    Ok,
    /// Success, or the time limit cutting a stream (exit 28).
    OkOrCut,
}

/// POST `body` to `url` (curl's `-d`, as the etcd docs' gateway examples do), with `headers` (`Name: value`).
pub fn post(pki: &Pki, url: &str, body: &str, headers: &[&str]) -> Result<(u16, String)> {
    let mut args = vec!["-X", "POST", "-d", body];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    curl(pki, &args, 10, Exit::Ok)
}

/// POST `body` to a streaming endpoint (watch, keep-alive) and return what arrived within `secs`
/// (an answer still open then is cut there; one that ends earlier returns at once).
pub fn post_stream(pki: &Pki, url: &str, body: &str, secs: u32) -> Result<(u16, String)> {
    curl(
        pki,
        &["--no-buffer", "-X", "POST", "-d", body, url],
        secs,
        Exit::OkOrCut,
    )
}

/// What [`exchange`] saw: the HTTP status, the response headers (names in lower case, in order) and
/// the body.
#[derive(Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A `method` request to `url` with `headers` (`Name: value`) and `body`.
pub fn exchange(
    pki: &Pki,
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&str>,
) -> Result<Exchange> {
    let mut args = vec!["--include", "-X", method];
    for h in headers {
        args.extend(["-H", h]);
    }
    if let Some(b) = body {
        args.extend(["-d", b]);
    }
    args.push(url);
    let (status, text) = curl(pki, &args, 10, Exit::Ok)?;
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("curl {url}: no header block in {text:?}");
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Exchange {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Run curl with the admin certificate; returns the HTTP status and the body.
fn curl(pki: &Pki, args: &[&str], max_secs: u32, exit: Exit) -> Result<(u16, String)> {
    let curl = require("curl", "curl")?;
    let url = args.last().copied().unwrap_or_default();
    let out = Command::new(curl)
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            &max_secs.to_string(),
        ])
        .arg("--cacert")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.admin.crt)
        .arg("--key")
        .arg(&pki.admin.key)
        .args(["--write-out", "\n%{http_code}"])
        .args(args)
        .output()
        .with_context(|| format!("running curl {url}"))?;
    // Exit 28: the time limit cut an answer that was still streaming.
    let cut = exit == Exit::OkOrCut && out.status.code() == Some(28);
    if exit != Exit::Any && !out.status.success() && !cut {
        bail!(
            "curl {url} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
