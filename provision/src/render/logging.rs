//! rsyslog drop-in (cairn's lines to their own file, then stop) and the matching logrotate config.

use super::{node_context, node_path, Artifact, RenderError};
use crate::spec::{Node, Spec};
use crate::templates::Templates;

/// Render `rsyslog/30-cairn.conf` and `logrotate/cairn`.
pub fn render(spec: &Spec, node: &Node, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    let ctx = node_context(spec, node);
    Ok(vec![
        Artifact::file(
            node_path(node, "rsyslog/30-cairn.conf"),
            t.render("rsyslog/30-cairn.conf", &ctx)?,
        ),
        Artifact::file(
            node_path(node, "logrotate/cairn"),
            t.render("logrotate/cairn", &ctx)?,
        ),
    ])
}
