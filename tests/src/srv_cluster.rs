//! The DNS example as it would run on real hosts: `provision render examples/dns3.yaml`, its zone served
//! by a real `named`, and every member in a network namespace of its own holding the address the zone
//! gives it, started from its rendered env file (the systemd unit's `EnvironmentFile`) and nothing else:
//! no `--initial-cluster`, only `--discovery-srv`. Clients run in the hub namespace next to `named`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cluster::{log_tails, Flavor};
use crate::etcdctl::Etcdctl;
use crate::named::Named;
use crate::netns::Lan;
use crate::srv_etcdctl::SrvEtcdctl;
use crate::wait::wait_for;

/// Where the rendered env files expect their certificates (`cluster.config_dir`, left at its default by
/// examples/dns3.yaml); the files are under `nodes/NAME/` of the render instead.
const CONFIG_DIR: &str = "/etc/cairn/";

/// One member host: its rendered environment and (while running) its process.
#[derive(Debug)]
pub struct SrvMember {
    /// `CAIRN_NAME`.
    pub name: String,
    /// The address its host namespace holds.
    pub address: String,
    /// The flags as `CAIRN_*` variables: the rendered env file with paths pointed into the test dir.
    pub env: BTreeMap<String, String>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
    /// Index of its host in [`SrvCluster::lan`].
    pub host: usize,
    child: Option<Child>,
}

/// The rendered DNS example: named in the hub, one namespace per member.
pub struct SrvCluster {
    /// Server binary flavour (etcd reads the same variables as `ETCD_*`).
    pub flavor: Flavor,
    /// Members in name order (their processes are killed before anything else is torn down).
    pub members: Vec<SrvMember>,
    named: Named,
    /// The namespaces.
    pub lan: Lan,
    /// `--discovery-srv` of the rendered members.
    pub domain: String,
    /// The `provision render` output directory.
    pub rendered: PathBuf,
    binary: PathBuf,
    dir: tempfile::TempDir,
}

/// `KEY=VALUE` lines of an env file (comments and blank lines skipped).
pub fn read_env(path: &Path) -> Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut env = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("{}:{}: not KEY=VALUE: {line}", path.display(), n + 1);
        };
        env.insert(k.to_string(), v.to_string());
    }
    Ok(env)
}

/// Host part of `scheme://host:port`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.rsplit_once(':')?.0)
}

impl SrvCluster {
    /// Renders examples/dns3.yaml, creates namespaces `discovery-PID-TAG-*` and serves the zone; starts
    /// no member.
    pub fn create(flavor: Flavor, tag: &str) -> Result<SrvCluster> {
        Self::create_from(flavor, tag, &crate::provision::example("dns3"))
    }

    /// Like [`SrvCluster::create`] from another cluster file with DNS bootstrap.
    pub fn create_from(flavor: Flavor, tag: &str, spec: &Path) -> Result<SrvCluster> {
        let binary = flavor.binary()?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-srv-")
            .tempdir()
            .context("creating the test dir")?;
        let rendered = dir.path().join("rendered");
        crate::provision::render(spec, &rendered, &[])?;
        let mut names: Vec<String> = std::fs::read_dir(rendered.join("nodes"))
            .context("listing rendered nodes")?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut members = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let node = rendered.join("nodes").join(name);
            let mut env = read_env(&node.join("cairn.env"))?;
            for v in env.values_mut() {
                if let Some(rest) = v.strip_prefix(CONFIG_DIR) {
                    *v = node.join(rest).display().to_string();
                }
            }
            env.insert(
                "CAIRN_DATA_DIR".into(),
                dir.path().join("data").join(name).display().to_string(),
            );
            let peer = env
                .get("CAIRN_LISTEN_PEER_URLS")
                .with_context(|| format!("{name}: no CAIRN_LISTEN_PEER_URLS"))?;
            let address = url_host(peer.split(',').next().unwrap_or_default())
                .with_context(|| format!("{name}: cannot read the address of {peer}"))?
                .to_string();
            members.push(SrvMember {
                name: name.clone(),
                address,
                log: dir.path().join(format!("{name}.log")),
                env,
                host: i,
                child: None,
            });
        }
        let first = members.first().context("the render has no nodes")?;
        let domain = first
            .env
            .get("CAIRN_DISCOVERY_SRV")
            .context("the rendered members do not use --discovery-srv")?
            .clone();
        let hub_address = match first.address.rsplit_once('.') {
            Some((net, _)) => format!("{net}.253"),
            None => bail!("{}: address {} is not IPv4", first.name, first.address),
        };
        if members.iter().any(|m| m.address == hub_address) {
            bail!("{hub_address} (the test's DNS server) is a member address; change the example or this test");
        }
        let mut lan = Lan::create(
            &format!("discovery-{}-{tag}", std::process::id()),
            &hub_address,
        )?;
        for m in &members {
            lan.add_host(&m.name, &m.address)?;
        }
        let zone = rendered.join("dns").join(format!("{domain}.zone"));
        let named = Named::serve(
            &lan.hub,
            &dir.path().join("named"),
            &domain,
            &zone,
            &["127.0.0.1", &hub_address],
        )?;
        Ok(SrvCluster {
            flavor,
            members,
            named,
            lan,
            domain,
            rendered,
            binary,
            dir,
        })
    }

    /// The test dir (data dirs, logs, the render).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a member host not in the render: `address` on a new namespace, environment `env`.
    pub fn add_member(
        &mut self,
        name: &str,
        address: &str,
        env: BTreeMap<String, String>,
    ) -> Result<usize> {
        self.lan.add_host(name, address)?;
        self.members.push(SrvMember {
            name: name.to_string(),
            address: address.to_string(),
            log: self.dir.path().join(format!("{name}.log")),
            env,
            host: self.lan.hosts().len() - 1,
            child: None,
        });
        Ok(self.members.len() - 1)
    }

    /// Starts member `i` in its namespace with its environment (as `ETCD_*` for etcd) and nothing else.
    pub fn start(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        if m.child.is_some() {
            bail!("member {} already started", m.name);
        }
        // Appended, so a restarted member's log keeps what it said before.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("opening {}", m.log.display()))?;
        let mut cmd = self.lan.hosts()[m.host].command(&self.binary);
        // Only the rendered variables: none of the caller's CAIRN_*/ETCD_* may leak in.
        for (k, _) in std::env::vars() {
            if k.starts_with("CAIRN_") || k.starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &m.env {
            let key = match self.flavor {
                Flavor::Cairn => k.clone(),
                Flavor::Etcd => k.replacen("CAIRN_", "ETCD_", 1),
            };
            cmd.env(key, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        m.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting member {}", m.name))?,
        );
        Ok(())
    }

    /// kill -9 of member `i` (reaped; it can be started again from its data dir).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            c.wait().with_context(|| format!("reaping {}", m.name))?;
        }
        Ok(())
    }

    /// Waits until member `i` has exited and returns its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> Result<Option<i32>> {
        let m = &mut self.members[i];
        let child = m
            .child
            .as_mut()
            .with_context(|| format!("{} was never started", m.name))?;
        wait_for(
            &format!("{} to exit", m.name),
            timeout,
            Duration::from_millis(50),
            || match child.try_wait() {
                Ok(Some(status)) => Ok(status.code()),
                Ok(None) => Err("still running".into()),
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// Member `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log).unwrap_or_default()
    }

    /// etcdctl in the hub with the admin certificate, finding the members through the client SRV
    /// records of the domain (`--discovery-srv`), resolved by the hub's resolv.conf (named).
    pub fn etcdctl(&self) -> SrvEtcdctl {
        SrvEtcdctl {
            netns: self.lan.hub.name.clone(),
            domain: Some(self.domain.clone()),
            srv_name: self
                .members
                .first()
                .and_then(|m| m.env.get("CAIRN_DISCOVERY_SRV_NAME").cloned()),
            ctl: Etcdctl {
                endpoints: String::new(),
                cacert: Some(self.rendered.join("pki/ca.crt")),
                cert: Some((
                    self.rendered.join("pki/clients/admin.crt"),
                    self.rendered.join("pki/clients/admin.key"),
                )),
            },
        }
    }

    /// etcdctl in the hub talking to the advertised client URLs of the given members only.
    pub fn etcdctl_for(&self, which: &[usize]) -> SrvEtcdctl {
        let urls: Vec<&str> = which
            .iter()
            .filter_map(|&i| {
                self.members[i]
                    .env
                    .get("CAIRN_ADVERTISE_CLIENT_URLS")
                    .map(String::as_str)
            })
            .collect();
        let mut ctl = self.etcdctl();
        ctl.domain = None;
        ctl.ctl.endpoints = urls.join(",");
        ctl
    }

    /// Every member's log tail and named's, for a failure report.
    pub fn logs(&self) -> String {
        let mut s = log_tails(
            self.members
                .iter()
                .map(|m| (m.name.as_str(), m.log.as_path())),
        );
        s.push_str(&log_tails(std::iter::once((
            "named",
            self.named.log.as_path(),
        ))));
        s
    }
}

impl Drop for SrvCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
        if std::thread::panicking() {
            eprintln!(
                "SRV cluster ({:?}) in {}:\n{}",
                self.flavor,
                self.dir.path().display(),
                self.logs()
            );
        }
    }
}
