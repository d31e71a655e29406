//! `nodes/<name>/systemd/cairn.service`: Type=notify, env file, restart policy, tight sandbox.

use serde_json::json;

use super::{node_context, node_path, Artifact, RenderError};
use crate::spec::{Node, Spec};
use crate::templates::Templates;

/// Where the unit expects the binary (`provision apply` installs it there).
pub const EXEC_START: &str = "/usr/local/bin/cairn";

/// Render the unit.
pub fn render(spec: &Spec, node: &Node, t: &Templates) -> Result<Vec<Artifact>, RenderError> {
    // systemd wants absolute paths; a relative config/data dir (a one-machine local cluster) means
    // "relative to where cairn starts", which the unit pins as WorkingDirectory = the render directory.
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let absolute = |p: String| {
        if p.starts_with('/') {
            p
        } else {
            format!(
                "{}/{}",
                cwd.trim_end_matches('/'),
                p.trim_start_matches("./")
            )
        }
    };
    let data_dir = absolute(spec.data_dir(node));
    // Data under /var/lib is a StateDirectory (systemd creates it owned by User=); anything else must be
    // named writable explicitly because ProtectSystem=strict makes the rest of the tree read-only.
    let state_dir = data_dir
        .strip_prefix("/var/lib/")
        .map(|s| s.trim_end_matches('/').to_string())
        .unwrap_or_default();
    let rw_path = if state_dir.is_empty() && data_dir.starts_with('/') {
        data_dir.clone()
    } else {
        String::new()
    };
    let mut ctx = node_context(spec, node);
    ctx["node"]["env_file"] = json!(absolute(spec.host_path(node, "cairn.env")));
    ctx["unit"] = json!({
        "working_directory": if spec.config_dir.starts_with('/') && node.data_dir.starts_with('/') { String::new() } else { cwd.clone() },
        "exec_start": EXEC_START,
        "state_directory": state_dir,
        "read_write_path": rw_path,
    });
    Ok(vec![Artifact::file(
        node_path(node, "systemd/cairn.service"),
        t.render("systemd/cairn.service", &ctx)?,
    )])
}
