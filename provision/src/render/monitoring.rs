//! Prometheus scrape config (client-cert auth with the `prometheus` identity) and a Kubernetes
//! ServiceMonitor with the selector-less Service + Endpoints that point at the members.

use serde_json::json;

use super::{Artifact, RenderError};
use crate::spec::Spec;
use crate::templates::Templates;

/// The client identity Prometheus scrapes with.
pub const PROMETHEUS_CLIENT: &str = "prometheus";

/// Render `monitoring/prometheus.yml` and `monitoring/servicemonitor.yaml` as configured.
pub fn render(spec: &Spec, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let m = &spec.monitoring;
    let targets: Vec<_> = spec
        .nodes
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "address": n.addresses[0].to_string(),
                "target": format!("{}:{}", crate::spec::url_host(n.addresses[0]), n.client_port),
                "port": n.client_port,
            })
        })
        .collect();
    let ctx = json!({
        "cluster": { "name": spec.name, "scheme": spec.scheme(), "tls": spec.tls.is_some() },
        "monitoring": { "namespace": m.namespace, "client": PROMETHEUS_CLIENT },
        "targets": targets,
    });
    let mut out = Vec::new();
    if m.prometheus {
        out.push(Artifact::file(
            "monitoring/prometheus.yml",
            t.render("monitoring/prometheus.yml", &ctx)?,
        ));
    }
    if m.kubernetes {
        out.push(Artifact::file(
            "monitoring/servicemonitor.yaml",
            t.render("monitoring/servicemonitor.yaml", &ctx)?,
        ));
    }
    Ok(out)
}
