//! Docker networks and containers owned by one test, removed on drop (also when the test fails).

use std::process::Command;

use anyhow::Result;

use crate::tools::{require, run_ok};

/// `docker ARGS…`; fails with docker's output unless it exits 0.
pub fn docker(args: &[&str]) -> Result<String> {
    let bin = require("docker", "docker-ce (Docker Engine)")?;
    run_ok(Command::new(bin).args(args))
}

/// A user-defined bridge network with a fixed subnet, so members get addresses a cluster file can name.
pub struct Network {
    /// Its name.
    pub name: String,
}

impl Network {
    /// `docker network create --subnet SUBNET NAME`, after removing a leftover of the same name (and the
    /// containers a killed earlier run left attached to it).
    pub fn create(name: &str, subnet: &str) -> Result<Self> {
        if let Ok(attached) = docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}} {{end}}",
            name,
        ]) {
            for c in attached.split_whitespace() {
                let _ = docker(&["rm", "-f", "-v", c]);
            }
            let _ = docker(&["network", "rm", name]);
        }
        docker(&["network", "create", "--subnet", subnet, name])?;
        Ok(Network { name: name.into() })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.name]);
    }
}

/// A running container, removed with its anonymous volumes on drop.
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// `docker run -d --name NAME ARGS…` (ARGS end with the image and its arguments).
    pub fn run(name: &str, args: &[&str]) -> Result<Self> {
        let _ = docker(&["rm", "-f", "-v", name]);
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        docker(&all)?;
        Ok(Container { name: name.into() })
    }

    /// `docker kill` (SIGKILL: no clean shutdown).
    pub fn kill(&self) -> Result<()> {
        docker(&["kill", &self.name])?;
        Ok(())
    }

    /// The container's log (stdout and stderr), for failure messages.
    pub fn logs(&self) -> String {
        docker(&["logs", "--tail", "40", &self.name]).unwrap_or_else(|e| format!("{e:#}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}
