//! `OUT/apply/state.json`: the members the last successful apply left running and how to reach them, so a
//! member deleted from cluster.yaml can still be stopped on its host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::target::Target;

/// The state file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Members by name.
    pub members: BTreeMap<String, Target>,
}

/// `OUT/apply/`: state, logs and snapshots (not part of the rendered manifest).
pub fn dir(out: &Path) -> PathBuf {
    out.join(crate::manifest::APPLY_DIR)
}

fn path(out: &Path) -> PathBuf {
    dir(out).join("state.json")
}

/// Read the state file (empty when there is none).
pub fn load(out: &Path) -> anyhow::Result<State> {
    read_json(&path(out), "a state file")
}

/// Write the state file.
pub fn save(out: &Path, state: &State) -> anyhow::Result<()> {
    write_json(&path(out), state)
}

/// A JSON record apply keeps under `OUT/apply/` (`what` names it in the error); the default when absent.
pub fn read_json<T: serde::de::DeserializeOwned + Default>(
    p: &Path,
    what: &str,
) -> anyhow::Result<T> {
    match crate::files::read_opt(p)? {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not {what} ({e}); move it away to start over",
                p.display()
            )
        }),
    }
}

/// Write a JSON record under `OUT/apply/`.
pub fn write_json<T: Serialize>(p: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    crate::files::write(p, text.as_bytes())?;
    Ok(())
}
