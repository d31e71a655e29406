//! The members' network: one namespace per member on a bridge in a hub namespace, where this process's
//! clients run (it enters the hub before starting its runtime). Partitions are nftables rules inside
//! the member namespaces, so the hub's client traffic is never cut, only member-to-member traffic.
//! Every name carries `ch-<pid>`; namespaces and mounts of an earlier run whose process is gone are
//! removed on start.

use std::os::fd::AsRawFd;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cairn_tests::cluster::Placement;
use cairn_tests::netns::Lan;
use cairn_tests::tools::run_ok;

/// Prefix of every namespace, nftables table and mount this harness makes.
pub const PREFIX: &str = "ch-";

/// The LAN of one harness process.
pub struct Net {
    lan: Lan,
    /// `ch-<pid>`: names the namespaces, the nftables table and the tmpfs mounts.
    pub tag: String,
    addresses: Vec<String>,
}

/// Address of member `i` on the bridge.
fn address(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

impl Net {
    /// Creates the hub and `members` member namespaces.
    pub fn create(members: usize) -> Result<Net> {
        let tag = format!("{PREFIX}{}", std::process::id());
        let mut lan = Lan::create(&tag, "10.77.0.254")
            .context("creating the hub namespace (the chaos harness runs as root)")?;
        let mut addresses = Vec::new();
        for i in 0..members {
            lan.add_host(&format!("m{i}"), &address(i))?;
            addresses.push(address(i));
        }
        Ok(Net {
            lan,
            tag,
            addresses,
        })
    }

    /// Moves the calling thread into the hub namespace; threads it starts afterwards inherit it, so
    /// call this before building the async runtime.
    pub fn enter_hub(&self) -> Result<()> {
        let path = format!("/run/netns/{}", self.lan.hub.name);
        let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        // SAFETY: setns on a namespace file we hold open; it only changes this thread's namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!("setns({path}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Where each member runs: its own namespace, etcd's well-known ports (nothing else listens there).
    pub fn placements(&self) -> Vec<Placement> {
        self.lan
            .hosts()
            .iter()
            .zip(&self.addresses)
            .map(|(h, a)| Placement {
                address: a.clone(),
                client_port: 2379,
                peer_port: 2380,
                netns: Some(h.name.clone()),
            })
            .collect()
    }

    fn nft(&self, member: usize, script: &str) -> Result<()> {
        let host = &self.lan.hosts()[member];
        let mut cmd = host.command("nft");
        cmd.args(["-f", "-"]);
        run_with_stdin(&mut cmd, script).with_context(|| format!("nftables in {}", host.name))
    }

    fn table(&self) -> String {
        format!(
            "table inet {t} {{\n chain input {{ type filter hook input priority 0; policy accept; }}\n \
             chain output {{ type filter hook output priority 0; policy accept; }}\n}}\n",
            t = self.tag
        )
    }

    /// Drops every packet `from` sends to `to` (TCP between them stalls in both directions, as with
    /// a real one-way loss: acknowledgements never arrive).
    pub fn drop_one_way(&self, from: usize, to: usize) -> Result<()> {
        let script = format!(
            "{}add rule inet {} output ip daddr {} drop\n",
            self.table(),
            self.tag,
            self.addresses[to]
        );
        self.nft(from, &script)
    }

    /// Cuts each member of `group` off from every member of `rest`, in both directions (the rules of
    /// one member go in with one nftables transaction, so the cut is in place all at once).
    pub fn cut(&self, group: &[usize], rest: &[usize]) -> Result<()> {
        for &a in group {
            let mut script = self.table();
            for &b in rest {
                script.push_str(&format!(
                    "add rule inet {n} output ip daddr {b} drop\nadd rule inet {n} input ip saddr {b} drop\n",
                    n = self.tag,
                    b = self.addresses[b]
                ));
            }
            self.nft(a, &script)?;
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> Result<()> {
        for i in 0..self.addresses.len() {
            // Adding first makes the delete succeed whether or not the table exists.
            self.nft(
                i,
                &format!("{}delete table inet {}\n", self.table(), self.tag),
            )?;
        }
        Ok(())
    }
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<()> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The harness PID in a name `ch-<pid>-...`.
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Removes what an earlier harness process left behind when it was killed: its members (processes in
/// its namespaces), its tmpfs mounts and its namespaces. Only names of this harness's prefix whose
/// process is gone are touched.
pub fn clean_stale() -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(source), Some(target)) = (f.next(), f.next()) else {
            continue;
        };
        if owner(source).is_some_and(|p| !alive(p)) {
            let _ = Command::new("umount").args(["-l", target]).output();
            cleaned.push(format!("mount {target}"));
        }
    }
    let list = run_ok(Command::new("ip").args(["netns", "list"]))?;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if owner(name).is_none_or(alive) {
            continue;
        }
        let pids = run_ok(Command::new("ip").args(["netns", "pids", name])).unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: plain kill(2) of a process left in a namespace of our own dead run.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        cleaned.push(format!("namespace {name}"));
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_names_of_this_prefix_with_a_pid_are_owned() {
        assert_eq!(super::owner("ch-123-m0"), Some(123));
        assert_eq!(super::owner("ch-123-hub"), Some(123));
        assert_eq!(super::owner("cs-123-m0"), None);
        assert_eq!(super::owner("ch-x-m0"), None);
        assert_eq!(super::owner("discovery-1-a"), None);
    }
}
