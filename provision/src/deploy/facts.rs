//! Host facts gathered in one round trip: OS, init system, clock, the member's process, binary and data.

use std::collections::BTreeMap;

use super::service::pid_script;
use super::target::Target;
use super::transport::quote;

/// What one host looks like before apply changes anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `PRETTY_NAME` from /etc/os-release.
    pub os: String,
    /// `uname -m`.
    pub arch: String,
    /// systemd is the running init system.
    pub systemd: bool,
    /// The host's clock (Unix seconds) when the script ran.
    pub clock: f64,
    /// The data dir holds a Raft log (the member was initialized here).
    pub has_data: bool,
    /// Main PID of the running member.
    pub pid: Option<u32>,
    /// `cairn --version` of the installed binary.
    pub version: Option<String>,
    /// Fingerprint of the files the running member was started with.
    pub stamp: Option<String>,
    /// The container technology when the host is a container (`systemd-detect-virt --container`).
    pub container: Option<String>,
    /// Which nftables/iptables tools exist.
    pub tools: Vec<String>,
    /// TCP ports something listens on (`ss -ltn`), to find a member's port taken by another program.
    pub listening: Vec<u16>,
}

/// The file whose presence under a data dir says the member was initialised: cairn's Raft state
/// (node/src/storage/data_dir.rs). Spelled here because provision reads hosts over SSH, not through the
/// library; a system test checks it against what a real member writes.
pub const MEMBER_DATA_MARKER: &str = "member/raft.redb";

/// The script printing `key=value` lines (run as root on systemd hosts).
pub fn script(t: &Target) -> String {
    format!(
        "echo \"os=$(. /etc/os-release 2>/dev/null; echo \"$PRETTY_NAME\")\"\n\
         echo \"arch=$(uname -m)\"\n\
         [ -d /run/systemd/system ] && echo systemd=yes\n\
         c=$(systemd-detect-virt --container 2>/dev/null) && echo \"container=$c\"\n\
         echo \"clock=$(date +%s.%N)\"\n\
         [ -f {data}/{marker} ] && echo data=yes\n\
         p=$({pid})\n\
         [ -n \"$p\" ] && echo \"pid=$p\"\n\
         [ -x {bin} ] && echo \"version=$({bin} --version 2>/dev/null | head -n1)\"\n\
         [ -f {stamp} ] && echo \"stamp=$(cat {stamp})\"\n\
         for t in nft iptables-restore firewall-cmd; do command -v $t >/dev/null 2>&1 && echo \"tool=$t\"; done\n\
         command -v ss >/dev/null && ss -ltnH 2>/dev/null | awk '{{n=split($4,a,\":\"); print \"listen=\" a[n]}}'\n\
         true",
        data = quote(&t.data_dir),
        marker = MEMBER_DATA_MARKER,
        pid = pid_script(t),
        bin = quote(&t.binary),
        stamp = quote(&t.stamp_file()),
    )
}

/// Parse the script's output.
pub fn parse(text: &str) -> Facts {
    let mut kv: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            kv.entry(k).or_default().push(v.trim());
        }
    }
    let one = |k: &str| {
        kv.get(k)
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
    };
    Facts {
        os: one("os").unwrap_or_else(|| "unknown".into()),
        arch: one("arch").unwrap_or_default(),
        systemd: one("systemd").is_some(),
        clock: one("clock").and_then(|c| c.parse().ok()).unwrap_or(0.0),
        has_data: one("data").is_some(),
        pid: one("pid").and_then(|p| p.parse().ok()),
        version: one("version"),
        stamp: one("stamp"),
        container: one("container").filter(|c| c != "none"),
        listening: kv
            .get("listen")
            .map(|v| v.iter().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default(),
        tools: kv
            .get("tool")
            .map(|v| v.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_running_member() {
        let f = parse(
            "os=Debian GNU/Linux 12 (bookworm)\narch=x86_64\nsystemd=yes\nclock=1700000000.5\ndata=yes\n\
             container=docker\npid=42\nversion=cairn 0.1.0\nstamp=s1\ntool=nft\nlisten=22\nlisten=2379\n",
        );
        assert_eq!(f.os, "Debian GNU/Linux 12 (bookworm)");
        assert!(f.systemd && f.has_data);
        assert_eq!(f.pid, Some(42));
        assert_eq!(f.clock, 1700000000.5);
        assert_eq!(f.version.as_deref(), Some("cairn 0.1.0"));
        assert_eq!(f.tools, vec!["nft".to_string()]);
        assert_eq!(f.container.as_deref(), Some("docker"));
        assert_eq!(f.listening, vec![22, 2379]);
    }

    #[test]
    fn a_fresh_host_has_nothing() {
        let f = parse("os=Debian\nclock=1\n");
        assert!(!f.systemd && !f.has_data);
        assert_eq!(f.pid, None);
        assert_eq!(f.version, None);
        assert_eq!(f.stamp, None);
    }

    #[test]
    fn script_is_valid_shell() {
        let t = crate::deploy::service::tests_target();
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &script(&t)])
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
