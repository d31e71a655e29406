//! Throw-away hosts on one machine: network namespaces joined by a bridge, each with its own addresses,
//! its own 127.0.0.1 and its own `/etc/resolv.conf`. `ip netns exec NS` bind-mounts every file of
//! `/etc/netns/NS/` over `/etc/`, which is how programs that read the system resolver configuration (Go's
//! etcdctl, hickory's default resolver) are pointed at a test DNS server without touching the machine's.
//! Everything is removed on drop, also when a test fails.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::tools::{require, run_ok};

/// One network namespace with its resolv.conf; deleted (namespace and `/etc/netns/NAME`) on drop.
#[derive(Debug)]
pub struct Host {
    /// The namespace name (`ip netns exec NAME …`).
    pub name: String,
    etc_dir: PathBuf,
}

impl Host {
    /// Creates namespace `name` with loopback up and `nameserver` as its only resolver.
    pub fn create(name: &str, nameserver: &str) -> Result<Host> {
        let ip = require("ip", "iproute2")?;
        run_ok(Command::new(ip).args(["netns", "add", name]))
            .with_context(|| format!("creating network namespace {name} (needs root)"))?;
        // From here on Drop cleans up whatever the rest of the setup leaves behind.
        let host = Host {
            name: name.to_string(),
            etc_dir: PathBuf::from("/etc/netns").join(name),
        };
        std::fs::create_dir_all(&host.etc_dir)
            .with_context(|| format!("creating {}", host.etc_dir.display()))?;
        let resolv = host.etc_dir.join("resolv.conf");
        std::fs::write(&resolv, format!("nameserver {nameserver}\n"))
            .with_context(|| format!("writing {}", resolv.display()))?;
        host.ip(&["link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// A command that runs `program` inside this namespace (with its resolv.conf).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// `ip ARGS` inside this namespace, failing with its output on a non-zero exit.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.etc_dir);
    }
}

/// A bridge in a hub namespace (where the DNS server and the clients run) and hosts plugged into it by
/// veth pairs, all in one IPv4 /24. Hosts are dropped before the hub.
#[derive(Debug)]
pub struct Lan {
    hosts: Vec<Host>,
    /// The hub namespace: resolver 127.0.0.1, bridge address [`Lan::hub_address`].
    pub hub: Host,
    hub_address: String,
    prefix: String,
}

impl Lan {
    /// Creates hub namespace `PREFIX-hub` with a bridge holding `hub_address` (an IPv4 address; the LAN
    /// is its /24). `prefix` names every namespace of this LAN, so tests running in parallel never share
    /// one.
    pub fn create(prefix: &str, hub_address: &str) -> Result<Lan> {
        if hub_address.parse::<std::net::Ipv4Addr>().is_err() {
            bail!("hub address {hub_address:?} is not an IPv4 address");
        }
        let hub = Host::create(&format!("{prefix}-hub"), "127.0.0.1")?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["addr", "add", &format!("{hub_address}/24"), "dev", "br0"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        Ok(Lan {
            hosts: Vec::new(),
            hub,
            hub_address: hub_address.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The hub's address on the bridge (the hosts' name server).
    pub fn hub_address(&self) -> &str {
        &self.hub_address
    }

    /// The hosts added so far, in order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Adds host `PREFIX-NAME` with `eth0` at `address`/24 on the bridge; its resolver is the hub.
    pub fn add_host(&mut self, name: &str, address: &str) -> Result<&Host> {
        let host = Host::create(&format!("{}-{name}", self.prefix), &self.hub_address)?;
        // Interface names are per namespace, so every host's end can be eth0; the hub's end is numbered.
        let hub_end = format!("veth{}", self.hosts.len());
        run_ok(Command::new("ip").args([
            "link",
            "add",
            "eth0",
            "netns",
            &host.name,
            "type",
            "veth",
            "peer",
            "name",
            &hub_end,
            "netns",
            &self.hub.name,
        ]))
        .with_context(|| format!("connecting {} to {}", host.name, self.hub.name))?;
        self.hub
            .ip(&["link", "set", &hub_end, "master", "br0", "up"])?;
        host.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        self.hosts.push(host);
        Ok(&self.hosts[self.hosts.len() - 1])
    }
}
