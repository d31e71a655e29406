//! `RunCtx`: what the phases of one command share, in groups: what is fixed for the command (options,
//! the checked spec), the output (`ui`), the live connections (`session` to the cluster's client API,
//! `fleet` of hosts), and what phases learn on the way — each group filled by the phase named in its doc.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::desired::Desired;
use super::facts::Facts;
use super::fleet::Fleet;
use super::plan::{Observed, Step, Wanted};
use super::session::Session;
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

/// The files each host should have and which of them differ (the Render phase).
#[derive(Default)]
pub struct FileState {
    /// sha256 of `opts.binary` (Connect, for commands that install it).
    pub binary_sha: String,
    /// Directory rendered into: `opts.out`, or a scratch copy in a dry run.
    pub render_dir: PathBuf,
    /// Scratch directory of a dry run's render (kept until the end).
    pub scratch: Option<tempfile::TempDir>,
    /// Files each host should have.
    pub desired: BTreeMap<String, Vec<Desired>>,
    /// Files each host lacks or has with other content.
    pub changed: BTreeMap<String, Vec<Desired>>,
    /// New certificates were held back during a CA rotation: apply runs again once this pass is done.
    pub second_pass: bool,
}

impl FileState {
    /// What member `name` would be started with now (binary + files it reads): compared with the stamp a
    /// running member was started with, and written as the new stamp at each (re)start.
    pub fn fingerprint(&self, name: &str) -> String {
        let files = self.desired.get(name).map(Vec::as_slice).unwrap_or(&[]);
        super::desired::fingerprint(files, &self.binary_sha)
    }

    /// Whether any file of `name` must be uploaded.
    pub fn changes(&self, name: &str) -> bool {
        self.changed.get(name).is_some_and(|c| !c.is_empty())
    }
}

/// The cluster's membership and what converge does about it (the Plan and Snapshot phases).
#[derive(Default)]
pub struct MembershipState {
    /// The cluster as its API reports it.
    pub observed: Observed,
    /// What converge does.
    pub steps: Vec<Step>,
    /// Snapshot taken before changing a running cluster.
    pub snapshot: Option<PathBuf>,
}

/// Shared by the phases of one command.
pub struct RunCtx {
    /// Options.
    pub opts: Options,
    /// The checked cluster file.
    pub spec: Spec,
    /// Output, log file and the change gate.
    pub ui: Ui,
    /// When the command started.
    pub started: Instant,
    /// The cluster's client API.
    pub session: Session,
    /// The hosts (logged in by the Connect phase).
    pub fleet: Fleet,
    /// Facts by host name (Gather facts).
    pub facts: BTreeMap<String, Facts>,
    /// Files per host (Render).
    pub files: FileState,
    /// Membership and plan (Plan, Snapshot).
    pub membership: MembershipState,
}

impl RunCtx {
    /// A context for `spec` with `opts`, printing through `ui`.
    pub fn new(spec: Spec, opts: Options, ui: Ui) -> anyhow::Result<RunCtx> {
        let session = Session::new(&spec, &opts.out)?;
        let fleet = Fleet::open(&spec, &opts.out, &opts.binary)?;
        Ok(RunCtx {
            files: FileState {
                render_dir: opts.out.clone(),
                ..FileState::default()
            },
            opts,
            spec,
            ui,
            started: Instant::now(),
            session,
            fleet,
            facts: BTreeMap::new(),
            membership: MembershipState::default(),
        })
    }

    /// What cluster.yaml wants, with each host's state from its facts.
    pub fn wanted(&self) -> Vec<Wanted> {
        self.fleet
            .members()
            .map(|h| {
                let f = self.facts.get(h.name()).cloned().unwrap_or_default();
                let fp = self.files.fingerprint(h.name());
                let running = f.pid.is_some();
                Wanted {
                    name: h.name().to_string(),
                    peer_url: h.target.peer_url.clone(),
                    has_data: f.has_data,
                    running,
                    // The stamp written at (re)start covers the binary and every file cairn reads at start.
                    stale: running && f.stamp.as_deref() != Some(fp.as_str()),
                }
            })
            .collect()
    }

    /// Read the membership from whichever known member answers.
    pub fn observe(&self) -> Observed {
        self.session
            .observe(&self.ui, &self.fleet.endpoints_by_name())
    }

    /// The leader's raft index right now.
    pub fn leader_index(&self) -> Option<u64> {
        let eps: Vec<String> = self.fleet.endpoints_by_name().into_values().collect();
        self.session.leader_index(&eps)
    }

    /// Wait until member `name` has applied `index` (and, unless a learner, answers a linearizable read).
    pub fn wait_member(&self, name: &str, index: u64, learner: bool) -> anyhow::Result<()> {
        let ep = self.fleet.host(name)?.target.client_endpoint.clone();
        self.session
            .wait_member(&self.ui, name, &ep, index, learner)
    }

    /// (name, client endpoint) of every member of cluster.yaml.
    pub fn member_endpoints(&self) -> Vec<(String, String)> {
        self.fleet
            .members()
            .map(|h| (h.name().to_string(), h.target.client_endpoint.clone()))
            .collect()
    }
}
