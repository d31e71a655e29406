//! The system `ssh` client: honours ~/.ssh/config, agents and jump hosts. One master connection per host
//! (ControlMaster) is shared by every command of a run; its socket lives in a private temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{feed_and_wait, quote, tail, Transport, TransportError};

/// Where and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// Login user (None: ssh's own default / ~/.ssh/config).
    pub user: Option<String>,
    /// Port (None: ssh's default / ~/.ssh/config).
    pub port: Option<u16>,
    /// Private key (None: agent / ~/.ssh/config).
    pub key: Option<PathBuf>,
}

/// A host reached through `ssh`.
#[derive(Debug)]
pub struct Ssh {
    target: SshTarget,
    control_dir: PathBuf,
    known_hosts: Option<PathBuf>,
}

impl Ssh {
    /// A transport for `target`; `control_dir` must be private (mode 0700) and short enough for a socket path.
    pub fn new(target: SshTarget, control_dir: &Path, known_hosts: Option<PathBuf>) -> Self {
        Ssh {
            target,
            control_dir: control_dir.to_path_buf(),
            known_hosts,
        }
    }

    /// The `ssh` arguments before the remote command.
    pub fn base_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            // Never prompt: a password or passphrase prompt would hang a parallel run.
            "BatchMode=yes",
            "ControlMaster=auto",
            "ControlPersist=120",
            "StrictHostKeyChecking=accept-new",
            "ConnectTimeout=10",
            "ServerAliveInterval=15",
        ]
        .iter()
        .flat_map(|o| ["-o".to_string(), o.to_string()])
        .collect();
        // %C is a hash of host, port and user, so one socket per login; the path stays short.
        a.extend([
            "-o".into(),
            format!("ControlPath={}/%C", self.control_dir.display()),
        ]);
        if let Some(k) = &self.known_hosts {
            a.extend(["-o".into(), format!("UserKnownHostsFile={}", k.display())]);
        }
        if let Some(p) = self.target.port {
            a.extend(["-p".into(), p.to_string()]);
        }
        if let Some(k) = &self.target.key {
            a.extend([
                "-i".into(),
                k.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        if let Some(u) = &self.target.user {
            a.extend(["-l".into(), u.clone()]);
        }
        a.push(self.target.host.clone());
        a
    }
}

impl Transport for Ssh {
    fn describe(&self) -> String {
        let user = self
            .target
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let port = self
            .target
            .port
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!("ssh {user}{}{port}", self.target.host)
    }

    fn exec(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, TransportError> {
        let spawn_err = |source| TransportError::Spawn {
            what: self.describe(),
            program: "ssh".into(),
            source,
        };
        let child = Command::new("ssh")
            .args(self.base_args())
            // ssh joins its arguments into one string for the remote login shell: quote the script once.
            .arg("--")
            .arg(format!("sh -c {}", quote(script)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let out = feed_and_wait(child, stdin).map_err(spawn_err)?;
        if out.status.code() == Some(255) {
            return Err(TransportError::Connect {
                host: self.describe(),
                stderr: tail(&out),
            });
        }
        Ok(out)
    }

    fn close(&self) {
        let mut args = self.base_args();
        let host = args.pop().unwrap_or_default();
        let _ = Command::new("ssh")
            .args(args)
            .args(["-O", "exit", &host])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_arguments_carry_batch_mode_control_path_and_target() {
        let s = Ssh::new(
            SshTarget {
                host: "10.0.1.10".into(),
                user: Some("operator".into()),
                port: Some(2222),
                key: Some("/k/id".into()),
            },
            Path::new("/tmp/x"),
            Some("/tmp/kh".into()),
        );
        let a = s.base_args().join(" ");
        assert!(a.contains("-o BatchMode=yes"), "{a}");
        assert!(a.contains("-o ControlPath=/tmp/x/%C"), "{a}");
        assert!(a.contains("-o StrictHostKeyChecking=accept-new"), "{a}");
        assert!(a.contains("-o UserKnownHostsFile=/tmp/kh"), "{a}");
        assert!(
            a.ends_with("-p 2222 -i /k/id -o IdentitiesOnly=yes -l operator 10.0.1.10"),
            "{a}"
        );
        assert_eq!(s.describe(), "ssh operator@10.0.1.10:2222");
    }
}
