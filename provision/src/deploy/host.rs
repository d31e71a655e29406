//! A connected host: its target, its transport, and whether commands need `sudo`. Every operation is
//! one shell script; failures name the host and the action.

use super::target::Target;
use super::transport::{quote, tail, Transport, TransportError};
use super::ui::Ui;

/// One member's machine, connected.
pub struct Host {
    /// Where and how the member runs.
    pub target: Target,
    transport: Box<dyn Transport>,
    /// Commands run through `sudo -n` (the login user is not root).
    pub sudo: bool,
}

impl Host {
    /// A host reached through `transport`; call `detect_sudo` before privileged commands.
    pub fn new(target: Target, transport: Box<dyn Transport>) -> Host {
        Host {
            target,
            transport,
            sudo: false,
        }
    }

    /// The member name (every line about this host starts with it).
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// `local` or `ssh user@host`.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Log in once (opens the shared connection), learn the user; non-root users must have passwordless sudo.
    pub fn login(&mut self, needs_root: bool) -> Result<String, TransportError> {
        let out = self.transport.exec("id -un; id -u", None)?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        let user = lines.next().unwrap_or("?").to_string();
        let uid = lines.next().unwrap_or("").trim().to_string();
        if !out.status.success() || uid.is_empty() {
            return Err(self.failed("id -u", &out));
        }
        self.sudo = needs_root && uid != "0";
        if self.sudo {
            let out = self.transport.exec("sudo -n true", None)?;
            if !out.status.success() {
                return Err(TransportError::Failed {
                    host: self.describe(),
                    action: "sudo -n true".into(),
                    code: out.status.code().unwrap_or(-1),
                    stderr: format!(
                        "{}; user {user} needs passwordless sudo (e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in \
                         /etc/sudoers.d/), or log in as root",
                        tail(&out)
                    ),
                });
            }
        }
        Ok(user)
    }

    fn failed(&self, action: &str, out: &std::process::Output) -> TransportError {
        TransportError::Failed {
            host: self.describe(),
            action: action.into(),
            code: out.status.code().unwrap_or(-1),
            stderr: tail(out),
        }
    }

    fn wrap(&self, script: &str) -> String {
        if self.sudo {
            format!("sudo -n sh -c {}", quote(script))
        } else {
            script.to_string()
        }
    }

    /// Run `script` (as root when sudo is needed); stdout on success, an error naming `action` otherwise.
    pub fn sh(&self, ui: &Ui, action: &str, script: &str) -> Result<String, TransportError> {
        self.sh_in(ui, action, script, None)
    }

    /// `sh` with bytes on stdin.
    pub fn sh_in(
        &self,
        ui: &Ui,
        action: &str,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<String, TransportError> {
        ui.log(&format!(
            "[{}] $ {}",
            self.name(),
            script.replace('\n', "\n    ")
        ));
        let out = self.transport.exec(&self.wrap(script), stdin)?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.stderr.is_empty() {
            ui.log(&format!(
                "[{}] stderr: {}",
                self.name(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        if !out.status.success() {
            return Err(self.failed(action, &out));
        }
        Ok(stdout)
    }

    /// Write `data` to `path` atomically (temp file in the same directory, then rename), with `mode` and,
    /// when given, `owner` (`user:group`).
    pub fn upload(
        &self,
        ui: &Ui,
        path: &str,
        data: &[u8],
        mode: u32,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        let chown = owner
            .map(|o| format!("chown {} \"$t\"\n", quote(o)))
            .unwrap_or_default();
        let script = format!(
            "set -e\np={p}\nd=$(dirname \"$p\")\nmkdir -p \"$d\"\nt=\"$d/.$(basename \"$p\").provision-tmp.$$\"\n\
             umask 077\ncat > \"$t\"\nchmod {mode:o} \"$t\"\n{chown}mv -f \"$t\" \"$p\"",
            p = quote(path),
        );
        self.sh_in(ui, &format!("upload {path}"), &script, Some(data))
            .map(|_| ())
    }

    /// Close the shared connection.
    pub fn close(&self) {
        self.transport.close();
    }
}
