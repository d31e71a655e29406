//! Shell scripts that start, stop and inspect a member, for systemd hosts and for supervised processes.
//! Pure string building, so the scripts are unit-tested; the transport runs them.

use super::target::{ServiceMode, Target, JOIN_DROPIN, UNIT_PATH};
use super::transport::quote;

/// Prints the member's main PID, or nothing when it is not running.
pub fn pid_script(t: &Target) -> String {
    match t.mode {
        ServiceMode::Systemd => {
            "p=$(systemctl show -p MainPID --value cairn.service 2>/dev/null); [ \"${p:-0}\" != 0 ] && echo \"$p\"; true"
                .into()
        }
        // The pid file holds "PID BINARY": a recorded PID is only ours while that process still runs the
        // binary it was started from (PIDs get reused; the binary to run next may be another one).
        ServiceMode::Process => format!(
            "read -r p b < {pid} 2>/dev/null && [ -r /proc/$p/cmdline ] && \
             [ \"$(tr '\\0' '\\n' < /proc/$p/cmdline | head -n1)\" = \"$b\" ] && echo \"$p\"; true",
            pid = quote(&t.pid_file()),
        ),
    }
}

/// How a member joins a running cluster (after MemberAdd): with state `existing`, and for a cluster
/// bootstrapped through discovery with the full `--initial-cluster` in place of the discovery flags — the
/// token is used up, so a new member asking it would be told the cluster is full.
#[derive(Debug, Clone, Default)]
pub struct Join {
    /// `--initial-cluster` to start with instead of `--discovery-token`/`--discovery-endpoints`.
    pub initial_cluster: Option<String>,
}

/// The discovery variables a joining member must not see (cairn refuses two bootstrap mechanisms).
const DISCOVERY_VARS: &str = "CAIRN_DISCOVERY_TOKEN CAIRN_DISCOVERY_ENDPOINTS";

/// Starts the member (not waiting for it to be healthy). `join`: start with state `existing`.
pub fn start_script(t: &Target, join: Option<&Join>) -> String {
    let ic = join.and_then(|j| j.initial_cluster.as_deref());
    match t.mode {
        ServiceMode::Systemd => {
            let mut s = String::from("set -e\n");
            if join.is_some() {
                let mut dropin = format!("[Service]\\nEnvironmentFile={}\\n", t.join_env());
                let mut env = vec!["CAIRN_INITIAL_CLUSTER_STATE=existing".to_string()];
                if let Some(ic) = ic {
                    // Applied after every EnvironmentFile= (systemd.exec), so the unit's env file stays as is.
                    dropin.push_str(&format!("UnsetEnvironment={DISCOVERY_VARS}\\n"));
                    env.push(format!("CAIRN_INITIAL_CLUSTER={ic}"));
                }
                s.push_str(&format!(
                    "mkdir -p {dir}\nprintf {dropin} > {dropin_path}\n\
                     printf '%s\\n' {env} > {env_path}\nsystemctl daemon-reload\n",
                    dir = quote(JOIN_DROPIN.rsplit_once('/').map(|x| x.0).unwrap_or("/")),
                    dropin = quote(&dropin),
                    dropin_path = quote(JOIN_DROPIN),
                    env = env.iter().map(|e| quote(e)).collect::<Vec<_>>().join(" "),
                    env_path = quote(&t.join_env()),
                ));
            }
            // --no-block: with Type=notify a start waits for READY, which a joining member only sends once
            // it has caught up; health is awaited through the client API instead, with progress.
            s.push_str(
                "systemctl enable --quiet cairn.service\nsystemctl start --no-block cairn.service",
            );
            s
        }
        ServiceMode::Process => {
            let mut join_lines = String::new();
            if join.is_some() {
                join_lines.push_str("CAIRN_INITIAL_CLUSTER_STATE=existing\n");
            }
            if let Some(ic) = ic {
                join_lines.push_str(&format!(
                    "unset {DISCOVERY_VARS}\nCAIRN_INITIAL_CLUSTER={}\n",
                    quote(ic)
                ));
            }
            format!(
                "set -e\nrunning=$({pid_of})\n\
                 if [ -n \"$running\" ]; then echo \"already running as pid $running\" >&2; exit 1; fi\n\
                 mkdir -p {data}\nchmod 700 {data}\nset -a\n. {env}\n{join_lines}set +a\n\
                 setsid {bin} >>{log} 2>&1 </dev/null &\necho \"$! \"{bin} > {pid}",
                pid_of = pid_script(t),
                data = quote(&t.data_dir),
                env = quote(&dot_path(&t.env_file)),
                bin = quote(&t.binary),
                log = quote(&t.process_log()),
                pid = quote(&t.pid_file()),
            )
        }
    }
}

fn dot_path(p: &str) -> String {
    if p.starts_with('/') || p.starts_with("./") || p.starts_with("../") {
        p.to_string()
    } else {
        format!("./{p}")
    }
}

/// Stops the member; SIGTERM first, SIGKILL after 10 s for a supervised process.
pub fn stop_script(t: &Target) -> String {
    match t.mode {
        ServiceMode::Systemd => "systemctl stop cairn.service".into(),
        // A zombie keeps its /proc entry but has an empty cmdline: it counts as gone.
        ServiceMode::Process => format!(
            "alive() {{ [ -n \"$(head -c1 /proc/$1/cmdline 2>/dev/null)\" ]; }}\np=$({pid_of})\n\
             [ -z \"$p\" ] && exit 0\nkill \"$p\" 2>/dev/null || true\ni=0\n\
             while alive \"$p\" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
             if alive \"$p\"; then kill -9 \"$p\"; echo killed; fi\nrm -f {pidf}",
            pid_of = pid_script(t),
            pidf = quote(&t.pid_file()),
        ),
    }
}

/// Stops the member and keeps it from starting at boot; removes the join drop-in.
pub fn disable_script(t: &Target) -> String {
    match t.mode {
        ServiceMode::Systemd => format!(
            "systemctl disable --now --quiet cairn.service 2>/dev/null || true\nrm -f {JOIN_DROPIN} {}\n\
             systemctl daemon-reload",
            quote(&t.join_env()),
        ),
        ServiceMode::Process => stop_script(t),
    }
}

/// Everything apply installed, for `reset` (data dir only with `purge`).
pub fn remove_script(t: &Target, purge: bool) -> String {
    let mut s = disable_script(t);
    if t.mode == ServiceMode::Systemd {
        s.push_str(&format!(
            "\nif [ -f {fw} ]; then systemctl disable --now --quiet cairn-firewall.service 2>/dev/null || true; fi\n\
             command -v nft >/dev/null && nft list table inet cairn >/dev/null 2>&1 && nft delete table inet cairn\n\
             rm -rf {cfg} {UNIT_PATH} /etc/systemd/system/cairn.service.d /etc/systemd/system/cairn-firewall.service /etc/rsyslog.d/30-cairn.conf \
             /etc/logrotate.d/cairn {bin}\nsystemctl daemon-reload\n\
             systemctl try-restart rsyslog.service 2>/dev/null || true",
            fw = super::target::FIREWALL_UNIT_PATH,
            cfg = quote(&t.config_dir),
            bin = quote(&t.binary),
        ));
    }
    if purge {
        s.push_str(&format!("\nrm -rf {}", quote(&t.data_dir)));
    }
    s
}

/// A local member's target for unit tests.
#[cfg(test)]
pub fn tests_target() -> Target {
    tests::target(ServiceMode::Process)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{FirewallBackend, TransportKind};

    pub(super) fn target(mode: ServiceMode) -> Target {
        Target {
            name: "infra0".into(),
            address: "127.0.0.1".into(),
            client_port: 2379,
            peer_port: 2380,
            peer_url: "https://127.0.0.1:2380".into(),
            client_endpoint: "https://127.0.0.1:2379".into(),
            transport: TransportKind::Local,
            ssh: None,
            mode,
            binary: "/usr/bin/cairn".into(),
            config_dir: "out/local/nodes/infra0".into(),
            data_dir: "./data/infra0".into(),
            env_file: "out/local/nodes/infra0/cairn.env".into(),
            firewall: FirewallBackend::None,
        }
    }

    #[test]
    fn process_start_sources_the_env_file_and_records_the_pid() {
        let s = start_script(&target(ServiceMode::Process), None);
        assert!(s.contains(". ./out/local/nodes/infra0/cairn.env\n"), "{s}");
        assert!(
            s.contains("setsid /usr/bin/cairn >>./data/infra0/cairn.log"),
            "{s}"
        );
        assert!(
            s.ends_with("echo \"$! \"/usr/bin/cairn > ./data/infra0/cairn.pid"),
            "{s}"
        );
        assert!(s.contains("already running"), "{s}");
        assert!(!s.contains("existing"), "{s}");
        let j = start_script(&target(ServiceMode::Process), Some(&Join::default()));
        assert!(
            j.contains("CAIRN_INITIAL_CLUSTER_STATE=existing\nset +a"),
            "{j}"
        );
    }

    #[test]
    fn systemd_join_start_adds_an_environment_file_drop_in() {
        let s = start_script(&target(ServiceMode::Systemd), Some(&Join::default()));
        assert!(
            s.contains("EnvironmentFile=out/local/nodes/infra0/join.env"),
            "{s}"
        );
        assert!(s.contains("systemctl daemon-reload"), "{s}");
        assert!(
            s.ends_with("systemctl start --no-block cairn.service"),
            "{s}"
        );
    }

    fn discovery_join() -> Join {
        Join {
            initial_cluster: Some(
                "infra0=https://127.0.0.1:2380,infra1=https://127.0.0.1:22380".into(),
            ),
        }
    }

    #[test]
    fn a_member_joining_a_discovery_cluster_starts_with_the_initial_cluster_not_the_token() {
        let p = start_script(&target(ServiceMode::Process), Some(&discovery_join()));
        assert!(
            p.contains(
                "unset CAIRN_DISCOVERY_TOKEN CAIRN_DISCOVERY_ENDPOINTS\n\
                 CAIRN_INITIAL_CLUSTER=infra0=https://127.0.0.1:2380,infra1=https://127.0.0.1:22380\nset +a"
            ),
            "{p}"
        );
        let s = start_script(&target(ServiceMode::Systemd), Some(&discovery_join()));
        assert!(
            s.contains("UnsetEnvironment=CAIRN_DISCOVERY_TOKEN CAIRN_DISCOVERY_ENDPOINTS"),
            "{s}"
        );
        assert!(
            s.contains("CAIRN_INITIAL_CLUSTER=infra0=https://127.0.0.1:2380,infra1=https://127.0.0.1:22380"),
            "{s}"
        );
    }

    #[test]
    fn scripts_are_valid_shell() {
        for mode in [ServiceMode::Process, ServiceMode::Systemd] {
            let t = target(mode);
            for s in [
                pid_script(&t),
                start_script(&t, Some(&Join::default())),
                start_script(&t, Some(&discovery_join())),
                stop_script(&t),
                remove_script(&t, true),
            ] {
                let out = std::process::Command::new("sh")
                    .args(["-n", "-c", &s])
                    .output()
                    .expect("sh runs");
                assert!(
                    out.status.success(),
                    "{s}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
