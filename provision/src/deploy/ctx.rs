//! `RunCtx`: what the phases of one command share. Options (fixed), the checked spec, the output, and
//! then what the phases learn on the way (connections, facts, file differences, the observed cluster, the
//! plan) — each in its own field, filled by the phase named in its doc.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;

use super::cluster::Api;
use super::desired::Desired;
use super::facts::Facts;
use super::host::Host;
use super::plan::{Observed, Step};
use super::ui::Ui;
use crate::spec::Spec;

/// Command-line options of apply, plan, status, backup and reset.
#[derive(Debug, Clone)]
pub struct Options {
    /// Show what would change; change nothing.
    pub dry_run: bool,
    /// Do not ask for confirmation.
    pub yes: bool,
    /// Also delete data dirs of removed members.
    pub purge: bool,
    /// The render/output directory.
    pub out: PathBuf,
    /// The cairn binary to install (ssh) or run (local).
    pub binary: PathBuf,
    /// Template overrides for render.
    pub templates: Option<PathBuf>,
}

/// Shared by the phases of one command.
pub struct RunCtx {
    /// Options.
    pub opts: Options,
    /// The checked cluster file.
    pub spec: Spec,
    /// Output, log file and the change gate.
    pub ui: Ui,
    /// Runs the async client-API calls.
    pub rt: tokio::runtime::Runtime,
    /// The cluster's client API.
    pub api: Api,
    /// When the command started.
    pub started: Instant,
    /// Private directory for ssh control sockets (removed at the end).
    pub control_dir: tempfile::TempDir,
    /// sha256 of `opts.binary`.
    pub binary_sha: String,
    /// Connected hosts: members of cluster.yaml in file order, then removed ones (connect).
    pub hosts: Vec<Host>,
    /// Names of hosts that are no longer in cluster.yaml (connect).
    pub removed: Vec<String>,
    /// Facts by host name (facts).
    pub facts: BTreeMap<String, Facts>,
    /// Directory rendered into: `opts.out`, or a scratch copy in a dry run (render).
    pub render_dir: PathBuf,
    /// Files each host should have (render).
    pub desired: BTreeMap<String, Vec<Desired>>,
    /// Files each host lacks or has with other content (render).
    pub changed: BTreeMap<String, Vec<Desired>>,
    /// The cluster as its API reports it (observe).
    pub observed: Observed,
    /// What converge does (observe).
    pub steps: Vec<Step>,
    /// Snapshot taken before changing a running cluster (snapshot).
    pub snapshot: Option<PathBuf>,
    /// Scratch directory of a dry run's render (kept until the end).
    pub scratch: Option<tempfile::TempDir>,
    /// New certificates were held back during a CA rotation: apply runs again once this pass is done.
    pub second_pass: bool,
}

impl RunCtx {
    /// A context for `spec` with `opts`; the log goes to `OUT/apply/logs/<command>-<time>.log`.
    pub fn new(spec: Spec, opts: Options, command: &str) -> anyhow::Result<RunCtx> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let log = super::state::dir(&opts.out)
            .join("logs")
            .join(format!("{command}-{stamp}.log"));
        let ui = Ui::new(opts.dry_run, Some(&log));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| anyhow!("starting the async runtime: {e}"))?;
        // Socket paths are limited to ~100 bytes: a short private directory under /tmp.
        let control_dir = tempfile::Builder::new()
            .prefix("prov-")
            .tempdir_in("/tmp")
            .map_err(|e| anyhow!("creating a directory for ssh control sockets in /tmp: {e}"))?;
        let api = Api::new(&spec, &opts.out);
        Ok(RunCtx {
            render_dir: opts.out.clone(),
            opts,
            spec,
            ui,
            rt,
            api,
            started: Instant::now(),
            control_dir,
            binary_sha: String::new(),
            hosts: Vec::new(),
            removed: Vec::new(),
            facts: BTreeMap::new(),
            desired: BTreeMap::new(),
            changed: BTreeMap::new(),
            observed: Observed::default(),
            steps: Vec::new(),
            snapshot: None,
            scratch: None,
            second_pass: false,
        })
    }

    /// Client endpoints (IPs) of the members of cluster.yaml.
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|h| !self.removed.contains(&h.target.name))
            .map(|h| h.target.client_endpoint.clone())
            .collect()
    }

    /// Client endpoints of every known host (cluster.yaml members first), by name.
    pub fn endpoints_by_name(&self) -> BTreeMap<String, String> {
        self.hosts
            .iter()
            .map(|h| (h.target.name.clone(), h.target.client_endpoint.clone()))
            .collect()
    }

    /// What member `name` would be started with now (binary + files it reads): compared with the stamp a
    /// running member was started with, and written as the new stamp at each (re)start.
    pub fn fingerprint(&self, name: &str) -> String {
        let files = self.desired.get(name).map(Vec::as_slice).unwrap_or(&[]);
        super::desired::fingerprint(files, &self.binary_sha)
    }

    /// The connected host called `name`.
    pub fn host(&self, name: &str) -> anyhow::Result<&Host> {
        self.hosts
            .iter()
            .find(|h| h.target.name == name)
            .ok_or_else(|| anyhow!("no connected host for member {name}"))
    }

    /// Hosts that are members of cluster.yaml.
    pub fn members(&self) -> impl Iterator<Item = &Host> {
        self.hosts
            .iter()
            .filter(|h| !self.removed.contains(&h.target.name))
    }

    /// Run `f` on every host of `hosts` in parallel; failures are collected per host and reported together.
    pub fn each<'a, F>(&'a self, hosts: Vec<&'a Host>, f: F) -> anyhow::Result<()>
    where
        F: Fn(&Host, &Ui) -> anyhow::Result<()> + Sync,
    {
        let errors: Vec<(String, anyhow::Error)> = std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .iter()
                .map(|h| {
                    let f = &f;
                    let ui = &self.ui;
                    (h.name().to_string(), s.spawn(move || f(h, ui)))
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|(name, h)| match h.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((name, e)),
                    Err(_) => Some((name, anyhow!("worker panicked"))),
                })
                .collect()
        });
        if errors.is_empty() {
            return Ok(());
        }
        for (name, e) in &errors {
            self.ui.host(name, &format!("error: {e:#}"));
        }
        let list: Vec<String> = errors.iter().map(|(n, e)| format!("{n}: {e:#}")).collect();
        Err(anyhow!(
            "failed on {} host(s): {}",
            errors.len(),
            list.join("; ")
        ))
    }
}
