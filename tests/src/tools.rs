//! The real validators the render tests run (openssl, named-checkzone, systemd-analyze, rsyslogd, nft,
//! iptables-restore, ansible-inventory) and throw-away network namespaces. A missing tool is an error
//! naming the Debian package (scripts/deps.sh installs them all), never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Path of `tool`, or an error saying which Debian package provides it.
pub fn require(tool: &str, package: &str) -> Result<PathBuf> {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "`{tool}` is not installed: install the Debian package `{package}` (scripts/deps.sh does)"
    )
}

/// Run and capture; errors only if the command could not start.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output().with_context(|| format!("starting {cmd:?}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run; fail with the tool's output unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let o = output(cmd)?;
    let t = text(&o);
    if !o.status.success() {
        bail!("{cmd:?} failed ({}):\n{t}", o.status);
    }
    Ok(t)
}

/// Run; fail unless it exits 0 AND prints nothing at all (systemd-analyze verify's contract).
pub fn run_silent(cmd: &mut Command) -> Result<()> {
    let t = run_ok(cmd)?;
    if !t.trim().is_empty() {
        bail!("{cmd:?} complained:\n{t}");
    }
    Ok(())
}

/// `openssl verify -CAfile ca [-purpose p] cert`.
pub fn openssl_verify(ca: &Path, cert: &Path, purpose: Option<&str>) -> Result<()> {
    let openssl = require("openssl", "openssl")?;
    let mut c = Command::new(openssl);
    c.arg("verify").arg("-CAfile").arg(ca);
    if let Some(p) = purpose {
        c.args(["-purpose", p]);
    }
    let out = run_ok(c.arg(cert))?;
    if !out.contains(": OK") {
        bail!("openssl verify {}: {out}", cert.display());
    }
    Ok(())
}

/// `openssl x509 -noout -text` of a certificate.
pub fn cert_text(cert: &Path) -> Result<String> {
    let openssl = require("openssl", "openssl")?;
    run_ok(
        Command::new(openssl)
            .args(["x509", "-noout", "-text", "-in"])
            .arg(cert),
    )
}

/// `named-checkzone` with every check set to fail.
pub fn named_checkzone(origin: &str, zone: &Path) -> Result<String> {
    let tool = require("named-checkzone", "bind9-utils")?;
    run_ok(
        Command::new(tool)
            .args([
                "-i", "local", "-k", "fail", "-n", "fail", "-M", "fail", "-S", "fail", origin,
            ])
            .arg(zone),
    )
}

/// A fake root for systemd-analyze: the host's unit library, the unit, and an executable at its
/// ExecStart path (verify refuses a unit whose binary does not exist).
pub fn systemd_root(dir: &Path, unit: &Path, exec_start: &str) -> Result<PathBuf> {
    let root = dir.join("root");
    let lib = root.join("usr/lib/systemd");
    std::fs::create_dir_all(&lib)?;
    run_ok(
        Command::new("cp")
            .arg("-r")
            .arg("/usr/lib/systemd/system")
            .arg(&lib),
    )?;
    let etc = root.join("etc/systemd/system");
    std::fs::create_dir_all(&etc)?;
    std::fs::copy(unit, etc.join("cairn.service")).context("copying the unit")?;
    let bin = root.join(exec_start.trim_start_matches('/'));
    if let Some(p) = bin.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n")?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
    Ok(root)
}

/// `systemd-analyze verify` in a fake root; any output is a failure.
pub fn systemd_verify(root: &Path) -> Result<()> {
    let tool = require("systemd-analyze", "systemd")?;
    run_silent(
        Command::new(tool)
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("/etc/systemd/system/cairn.service"),
    )
}

/// `systemd-analyze security --offline=yes`: the overall exposure score.
pub fn systemd_exposure(root: &Path) -> Result<f64> {
    let tool = require("systemd-analyze", "systemd")?;
    let out = run_ok(
        Command::new(tool)
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .arg("cairn.service"),
    )?;
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .with_context(|| format!("no exposure level in:\n{out}"))?;
    let score = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| format!("cannot read the score in {line:?}"))?;
    Ok(score)
}

/// `rsyslogd -N1 -f conf`; any error or warning line fails.
pub fn rsyslog_check(conf: &Path) -> Result<()> {
    let tool = require("rsyslogd", "rsyslog")?;
    let out = run_ok(Command::new(tool).arg("-N1").arg("-f").arg(conf))?;
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("warning")
        })
        .collect();
    if !bad.is_empty() {
        bail!("rsyslogd -N1 {}:\n{}", conf.display(), bad.join("\n"));
    }
    Ok(())
}

/// `nft -c -f file`.
pub fn nft_check(file: &Path) -> Result<()> {
    let tool = require("nft", "nftables")?;
    run_silent(Command::new(tool).arg("-c").arg("-f").arg(file))
}

/// `iptables-restore --test --noflush` (or ip6tables-restore).
pub fn iptables_check(file: &Path, v6: bool) -> Result<()> {
    let name = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    let tool = require(name, "iptables")?;
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    run_silent(Command::new(tool).args(["--test", "--noflush"]).stdin(f))
}

/// `ansible-inventory -i file --list` as JSON; warnings fail.
pub fn ansible_inventory(file: &Path) -> Result<serde_json::Value> {
    let tool = require("ansible-inventory", "ansible-core")?;
    let o = output(Command::new(tool).arg("-i").arg(file).arg("--list"))?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() || err.contains("WARNING") || err.contains("ERROR") {
        bail!(
            "ansible-inventory -i {} failed ({}):\n{err}",
            file.display(),
            o.status
        );
    }
    serde_json::from_slice(&o.stdout).context("ansible-inventory output is not JSON")
}

/// A network namespace of our own, deleted on drop (also when the test fails).
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Create `cairn-test-<tag>-<pid>`.
    pub fn new(tag: &str) -> Result<Self> {
        let ip = require("ip", "iproute2")?;
        let name = format!("cairn-{tag}-{}", std::process::id());
        run_ok(Command::new(ip).args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Run a command inside the namespace, failing on a non-zero exit.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        run_ok(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    /// A command that will run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Connect a veth pair between two namespaces: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> Result<()> {
    run_ok(Command::new("ip").args([
        "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]))?;
    a.exec(&["ip", "link", "set", a_if, "up"])?;
    b.exec(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}
