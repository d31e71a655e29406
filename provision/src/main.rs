//! `provision`: check, render and inspect a Cairn cluster from one cluster.yaml.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use provision::deploy;
use provision::render::output::{self, Format};
use provision::{pki, spec};

/// Turn one cluster.yaml into certificates, env files, systemd units, logging, firewall, DNS and monitoring.
#[derive(Parser)]
#[command(name = "provision", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate cluster.yaml and report every problem (exit 2 if any).
    Check(CheckArgs),
    /// Validate, then write certificates and every artifact to the output directory.
    Render(RenderArgs),
    /// Show the certificates of a rendered directory; `--rotate-ca` starts a CA rotation.
    Certs(CertsArgs),
    /// Render, install and start (or update, grow, shrink, roll) the cluster on its hosts.
    Apply(ApplyArgs),
    /// What `apply` would change, per host; changes nothing (= `apply --dry-run`).
    Plan(ApplyArgs),
    /// Members, leader, health and certificate expiry of a running cluster.
    Status(DeployArgs),
    /// Save a verified snapshot of the cluster through the Maintenance API.
    Backup(BackupArgs),
    /// Stop and disable every member and delete what apply installed, data included (asks unless --yes).
    Reset(ResetArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The cluster file.
    cluster: PathBuf,
    /// A rendered directory whose certificates are checked against the file (SANs, CA, expiry).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RenderArgs {
    /// The cluster file.
    cluster: PathBuf,
    /// Output directory (see README for the layout); default out/<cluster name>.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Directory whose files replace the built-in templates of the same name (e.g. systemd/cairn.service).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// `files`: every artifact for Debian-style hosts; `nix`: certificates plus nodes/<name>/cairn.nix,
    /// the attribute set NixOS's services.cairn (nix/module.nix) takes.
    #[arg(long, value_enum, default_value = "files")]
    format: RenderFormat,
}

/// What `render` writes besides the certificates.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RenderFormat {
    Files,
    Nix,
}

#[derive(Args)]
struct CertsArgs {
    /// The cluster file.
    cluster: PathBuf,
    /// The rendered directory; default out/<cluster name>.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Make a new CA, keep the old one trusted (ca-bundle.crt) and reissue every leaf with the new CA.
    #[arg(long)]
    rotate_ca: bool,
}

#[derive(Args)]
struct DeployArgs {
    /// The cluster file.
    cluster: PathBuf,
    /// Render/output directory; default out/<cluster name>. State, logs and snapshots go to its apply/.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// The cairn binary installed on ssh hosts (or run by local members); default: `cairn` next to
    /// provision, else on PATH.
    #[arg(long, env = "CAIRN_BINARY")]
    binary: Option<PathBuf>,
}

#[derive(Args)]
struct ApplyArgs {
    #[command(flatten)]
    common: DeployArgs,
    /// Print what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Members removed from the file also lose their data dir.
    #[arg(long)]
    purge: bool,
    /// Answer yes to questions.
    #[arg(long, short)]
    yes: bool,
    /// Directory whose files replace the built-in templates of the same name.
    #[arg(long)]
    templates: Option<PathBuf>,
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    common: DeployArgs,
    /// The snapshot file to write.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
}

#[derive(Args)]
struct ResetArgs {
    #[command(flatten)]
    common: DeployArgs,
    /// Do not ask for confirmation.
    #[arg(long, short)]
    yes: bool,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A configuration problem (exit 2) as opposed to a runtime failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConfigError(String);

fn load(path: &Path) -> anyhow::Result<spec::Spec> {
    match spec::load(path) {
        Ok(s) => {
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            Ok(s)
        }
        Err(e @ spec::SpecError::Invalid(_)) => Err(ConfigError(e.to_string()).into()),
        Err(e) => Err(ConfigError(e.to_string()).into()),
    }
}

/// Render everything for `spec` into `out`.
fn render_to(
    spec: &spec::Spec,
    out: &Path,
    templates: Option<&Path>,
    format: RenderFormat,
) -> anyhow::Result<output::Rendered> {
    let format = match format {
        RenderFormat::Files => Format::Files,
        RenderFormat::Nix => Format::Nix,
    };
    output::render_dir(spec, out, templates, format).map_err(config_or_runtime)
}

/// A render error as exit 2 (the operator must change an input) or exit 1.
fn config_or_runtime(e: output::OutputError) -> anyhow::Error {
    if e.is_config() {
        ConfigError(e.to_string()).into()
    } else {
        anyhow::Error::new(e)
    }
}

/// The output directory: as given, else `out/<cluster name>` (the same default for every command).
fn out_dir(s: &spec::Spec, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| Path::new("out").join(&s.name))
}

/// Print what a render did: certificates issued, files of an earlier render removed or moved.
fn report(s: &spec::Spec, r: &output::Rendered) {
    for i in &r.issued {
        println!("issued {} ({})", i.path.display(), i.reason);
    }
    if r.issued.is_empty() && s.tls.is_some() {
        println!("certificates: all kept (present, current, covering every address)");
    }
    for m in &r.removed {
        println!("{m}");
    }
}

/// `check`'s one-line verdict, in the spellings of cluster.yaml.
fn summary(file: &Path, s: &spec::Spec) -> String {
    let families = {
        let mut f: Vec<&str> = Vec::new();
        for a in s.nodes.iter().flat_map(|n| &n.addresses) {
            let name = if a.is_ipv6() { "IPv6" } else { "IPv4" };
            if !f.contains(&name) {
                f.push(name);
            }
        }
        f.join("+")
    };
    format!(
        "{}: ok ({} members, {families}, bootstrap {}, tls {}, firewall {})",
        file.display(),
        s.nodes.len(),
        s.bootstrap,
        if s.tls.is_some() { "on" } else { "off" },
        s.firewall.backend,
    )
}

/// The cairn binary: `--binary`, else `cairn` next to this executable, else on PATH.
fn cairn_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(b) = given {
        return std::path::absolute(&b).with_context(|| format!("--binary {}", b.display()));
    }
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("cairn")))
        .filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("cairn"))
                .find(|p| p.is_file())
        })
    };
    sibling.or_else(on_path).ok_or_else(|| {
        ConfigError(
            "no cairn binary next to provision or on PATH; build it (`cargo build -p cairn-node`) or pass --binary"
                .into(),
        )
        .into()
    })
}

/// Options shared by the deploy commands; `installs`: the command needs the cairn binary (apply, plan).
fn deploy_options(
    s: &spec::Spec,
    a: DeployArgs,
    installs: bool,
) -> anyhow::Result<deploy::Options> {
    let binary = match cairn_binary(a.binary) {
        Ok(b) => b,
        // status, backup and reset only talk to the cluster or stop what runs: no binary needed.
        Err(_) if !installs => PathBuf::from("cairn"),
        Err(e) => return Err(e),
    };
    Ok(deploy::Options {
        dry_run: false,
        yes: false,
        purge: false,
        out: out_dir(s, a.out),
        binary,
        templates: None,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check(a) => {
            let s = load(&a.cluster)?;
            if let Some(out) = &a.out {
                let stale = pki::stale(&s, out)?;
                for (path, why) in &stale {
                    // A CA's reason carries its own fix (a rotation); a leaf is reissued by render.
                    let fix = if path.ends_with("ca.crt") || path.ends_with("peer-ca.crt") {
                        String::new()
                    } else {
                        format!(
                            "\n    fix: run `provision render {} -o {}` to reissue it",
                            a.cluster.display(),
                            out.display()
                        )
                    };
                    eprintln!("error: {}: {why}{fix}", path.display());
                }
                if !stale.is_empty() {
                    return Err(ConfigError(format!(
                        "{} certificate(s) under {} do not match {}",
                        stale.len(),
                        out.display(),
                        a.cluster.display()
                    ))
                    .into());
                }
            }
            println!("{}", summary(&a.cluster, &s));
        }
        Command::Render(a) => {
            let s = load(&a.cluster)?;
            let out = out_dir(&s, a.out);
            let rendered = render_to(&s, &out, a.templates.as_deref(), a.format)?;
            report(&s, &rendered);
            println!("rendered {} into {}", a.cluster.display(), out.display());
        }
        Command::Certs(a) => {
            let s = load(&a.cluster)?;
            let out = out_dir(&s, a.out);
            if a.rotate_ca {
                for i in pki::rotate_ca(&s, &out)? {
                    println!("issued {} ({})", i.path.display(), i.reason);
                }
                // Reissue every leaf with the new CA now; nodes trust both CAs through ca-bundle.crt.
                let rendered = output::refresh_certs(&s, &out).map_err(config_or_runtime)?;
                report(&s, &rendered);
            }
            print!("{}", provision::pki::table(&out)?);
        }
        Command::Apply(a) => apply(a, false)?,
        Command::Plan(a) => apply(a, true)?,
        Command::Status(a) => {
            let s = load(&a.cluster)?;
            let o = deploy_options(&s, a, false)?;
            deploy::commands::status(s, o)?;
        }
        Command::Backup(a) => {
            let s = load(&a.common.cluster)?;
            let o = deploy_options(&s, a.common, false)?;
            deploy::commands::backup(s, o, &a.file)?;
        }
        Command::Reset(a) => {
            let s = load(&a.common.cluster)?;
            let mut o = deploy_options(&s, a.common, false)?;
            o.yes = a.yes;
            o.dry_run = a.dry_run;
            deploy::commands::reset(s, o)?;
        }
    }
    Ok(())
}

fn apply(a: ApplyArgs, plan: bool) -> anyhow::Result<()> {
    let s = load(&a.common.cluster)?;
    let mut o = deploy_options(&s, a.common, true)?;
    o.dry_run = plan || a.dry_run;
    o.yes = a.yes;
    o.purge = a.purge;
    o.templates = a.templates;
    deploy::commands::apply(s, o)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<ConfigError>().is_some() {
                eprintln!("error: {e}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}
