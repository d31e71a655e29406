//! This machine: `sh -c` in the current directory (relative paths in cluster.yaml mean "from here").

use std::process::{Command, Output, Stdio};

use super::{feed_and_wait, Transport, TransportError};

/// Runs scripts on this machine as the current user.
#[derive(Debug, Default)]
pub struct Local;

impl Transport for Local {
    fn describe(&self) -> String {
        "local".into()
    }

    fn exec(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, TransportError> {
        let spawn_err = |source| TransportError::Spawn {
            what: "local".into(),
            program: "sh".into(),
            source,
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        feed_and_wait(child, stdin).map_err(spawn_err)
    }
}
