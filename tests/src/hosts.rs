//! Test hosts: Debian 12 containers from `scripts/host-image.sh` (systemd as PID 1, sshd, sudo, rsyslog,
//! nftables, python3) on a private Docker network, each with its own address, reachable over real SSH as
//! `root` or as `operator` (passwordless sudo) with a key generated per host set. What `provision apply` and
//! the Ansible role are tested against. Everything is removed when the `HostSet` is dropped.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::tools::{output, require, run_ok};
use crate::wait::wait_for;
use crate::workspace;

/// The image `scripts/host-image.sh` builds.
pub const IMAGE: &str = "cairn-host:bookworm";

/// The unprivileged SSH user on every host (member of sudo, NOPASSWD).
pub const OPERATOR: &str = "operator";

/// One running host container.
#[derive(Debug, Clone)]
pub struct Host {
    /// Host name (also the container's hostname).
    pub name: String,
    /// Its address on the host set's network.
    pub address: Ipv4Addr,
    /// The Docker container name.
    pub container: String,
}

/// A private Docker network with host containers on it.
pub struct HostSet {
    prefix: String,
    network: String,
    subnet_base: [u8; 3],
    next_octet: u8,
    hosts: Vec<Host>,
    dir: tempfile::TempDir,
}

/// Builds the host image once per test process (the script itself skips when the image exists).
pub fn ensure_image() -> Result<()> {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *built {
        return Ok(());
    }
    require("docker", "docker.io")?;
    require("debootstrap", "debootstrap")?;
    let script = workspace::root().join("scripts/host-image.sh");
    run_ok(Command::new("bash").arg(&script).arg(IMAGE))
        .with_context(|| format!("building the host image with {}", script.display()))?;
    *built = true;
    Ok(())
}

impl HostSet {
    /// Starts one host per name on a new network `PREFIX-net`; containers are named `PREFIX-NAME`.
    /// `prefix` must be unique among concurrently running tests.
    pub fn start(prefix: &str, names: &[&str]) -> Result<HostSet> {
        ensure_image()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-hosts"))
            .tempdir()
            .context("creating the host set's temp dir")?;
        let key = dir.path().join("id_ed25519");
        run_ok(
            Command::new(require("ssh-keygen", "openssh-client")?)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", prefix, "-f"])
                .arg(&key),
        )?;
        let network = format!("{prefix}-net");
        // A leftover from a crashed run of the same test would make every name clash: remove it first.
        remove_network_and_containers(&network, prefix);
        let subnet_base = create_network(&network, prefix)?;
        let mut set = HostSet {
            prefix: prefix.to_string(),
            network,
            subnet_base,
            next_octet: 10,
            hosts: Vec::new(),
            dir,
        };
        for name in names {
            set.launch(name)?;
        }
        for host in set.hosts.clone() {
            set.wait_ssh(&host)?;
        }
        Ok(set)
    }

    /// Starts one more host on the same network (for growing a cluster) and waits for its sshd.
    pub fn add(&mut self, name: &str) -> Result<Host> {
        let host = self.launch(name)?;
        self.wait_ssh(&host)?;
        Ok(host)
    }

    /// The hosts, in start order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| format!("no host {name} in host set {}", self.prefix))
    }

    /// The private key that logs in as root and as `operator` on every host.
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    /// Writes an ssh_config with one `Host NAME` entry per host (address, user `operator`, the key, no
    /// host-key prompts) and returns its path; use with `ssh -F` or Ansible's `ansible_ssh_common_args`.
    pub fn ssh_config(&self) -> Result<PathBuf> {
        let mut text = String::new();
        for h in &self.hosts {
            text.push_str(&format!(
                "Host {name}\n  HostName {addr}\n  User {OPERATOR}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
                 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                name = h.name,
                addr = h.address,
                key = self.ssh_key().display()
            ));
        }
        let path = self.dir.path().join("ssh_config");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A directory that lives as long as the host set (for rendered files, inventories, logs).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sh -c script` as root inside the host (docker exec, not SSH) and returns its output;
    /// fails with the output when it exits non-zero.
    pub fn exec(&self, host: &Host, script: &str) -> Result<String> {
        run_ok(Command::new("docker").args(["exec", &host.container, "sh", "-c", script]))
            .with_context(|| format!("on host {}", host.name))
    }

    /// Runs `script` over real SSH as `operator` and returns (success, combined output).
    pub fn ssh(&self, host: &Host, script: &str) -> Result<(bool, String)> {
        let o = output(
            Command::new("ssh")
                .args(self.ssh_args())
                .arg(format!("{OPERATOR}@{}", host.address))
                .arg(script),
        )?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Ok((o.status.success(), text))
    }

    /// `docker kill` (SIGKILL to the whole host, as a power loss would).
    pub fn kill(&self, host: &Host) -> Result<()> {
        run_ok(Command::new("docker").args(["kill", &host.container]))?;
        Ok(())
    }

    /// Stops and removes one host.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let host = self.host(name)?.clone();
        run_ok(Command::new("docker").args(["rm", "-f", &host.container]))?;
        self.hosts.retain(|h| h.name != name);
        Ok(())
    }

    fn ssh_args(&self) -> Vec<String> {
        [
            "-i",
            &self.ssh_key().display().to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn launch(&mut self, name: &str) -> Result<Host> {
        if self.next_octet == 250 {
            bail!("host set {}: no addresses left", self.prefix);
        }
        let [a, b, c] = self.subnet_base;
        let address = Ipv4Addr::new(a, b, c, self.next_octet);
        self.next_octet += 1;
        let container = format!("{}-{name}", self.prefix);
        // systemd as PID 1 needs the cgroup tree and a writable /run; SYS_ADMIN lets it apply the units'
        // sandboxing (mount namespaces), NET_ADMIN lets nftables load rules into the host's own network
        // namespace. (--privileged is refused by this machine's container runtime.)
        run_ok(Command::new("docker").args([
            "run",
            "-d",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:ro",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--tmpfs",
            "/tmp",
            "--network",
            &self.network,
            "--ip",
            &address.to_string(),
            "--hostname",
            name,
            "--name",
            &container,
            "--label",
            &format!("cairn-test={}", self.prefix),
            IMAGE,
        ]))
        .with_context(|| format!("starting host container {container}"))?;
        let host = Host {
            name: name.to_string(),
            address,
            container,
        };
        self.hosts.push(host.clone());
        // Right after `docker run` the container may still be setting itself up; under load the first
        // `docker exec` has failed with no message (seen once with 8 containers starting): try again.
        let mut tries = 0;
        while let Err(e) = self.install_key(&host) {
            tries += 1;
            if tries == 5 {
                return Err(e);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(host)
    }

    fn install_key(&self, host: &Host) -> Result<()> {
        let pubkey_path = self.dir.path().join("id_ed25519.pub");
        let pubkey = std::fs::read(&pubkey_path)
            .with_context(|| format!("reading {}", pubkey_path.display()))?;
        let script = format!(
            "set -e; cat > /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys; \
             cp /root/.ssh/authorized_keys /home/{OPERATOR}/.ssh/authorized_keys; \
             chown -R {OPERATOR}:{OPERATOR} /home/{OPERATOR}/.ssh"
        );
        let mut child = Command::new("docker")
            .args(["exec", "-i", &host.container, "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("docker exec")?;
        child
            .stdin
            .take()
            .context("docker exec stdin")?
            .write_all(&pubkey)
            .context("writing the public key to docker exec")?;
        let o = child.wait_with_output().context("docker exec")?;
        if !o.status.success() {
            bail!(
                "installing the ssh key on {}: {}",
                host.name,
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(())
    }

    fn wait_ssh(&self, host: &Host) -> Result<()> {
        wait_for(
            &format!("sshd on host {} ({})", host.name, host.address),
            Duration::from_secs(90),
            Duration::from_millis(500),
            || match self.ssh(host, "sudo -n true") {
                Ok((true, _)) => Ok(()),
                Ok((false, out)) => Err(out),
                Err(e) => Err(format!("{e:#}")),
            },
        )
    }
}

impl Drop for HostSet {
    fn drop(&mut self) {
        if std::env::var_os("CAIRN_KEEP_HOSTS").is_some() {
            eprintln!(
                "CAIRN_KEEP_HOSTS set: leaving network {} and its containers",
                self.network
            );
            return;
        }
        remove_network_and_containers(&self.network, &self.prefix);
    }
}

/// Removes every container labelled with this prefix, then the network. Errors are ignored: this is cleanup.
fn remove_network_and_containers(network: &str, prefix: &str) {
    let ids = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=cairn-test={prefix}"),
        ])
        .output();
    if let Ok(o) = ids {
        let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
    let _ = Command::new("docker")
        .args(["network", "rm", network])
        .output();
}

/// Creates `network` on the first free /24 of 10.213.0.0/16 starting at a slot derived from the prefix,
/// so concurrent tests with different prefixes rarely collide (and retry when they do).
fn create_network(network: &str, prefix: &str) -> Result<[u8; 3]> {
    let start = prefix
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 200;
    let mut last = String::new();
    for i in 0..40 {
        let third = ((start + i) % 250 + 1) as u8;
        let subnet = format!("10.213.{third}.0/24");
        let o = output(Command::new("docker").args([
            "network",
            "create",
            "--subnet",
            &subnet,
            "--label",
            &format!("cairn-test={prefix}"),
            network,
        ]))?;
        if o.status.success() {
            return Ok([10, 213, third]);
        }
        last = String::from_utf8_lossy(&o.stderr).into_owned();
        if !last.contains("overlap") {
            break;
        }
    }
    bail!("docker network create {network} failed: {last}")
}
