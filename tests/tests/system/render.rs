//! System tests of `provision render` output, checked by the real validators: every example is
//! rendered into a temp dir and each artifact goes through the tool that will consume it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use cairn_tests::{tools, workspace};

const EXAMPLES: &[&str] = &[
    "static3",
    "dns3",
    "five",
    "local",
    "dualstack",
    "appliance",
    "discovery",
];

/// `provision <args>`; returns (exit code, stdout+stderr).
fn provision(args: &[&str]) -> Result<(i32, String)> {
    provision_in(Path::new("."), args)
}

fn example(name: &str) -> PathBuf {
    workspace::root()
        .join("examples")
        .join(format!("{name}.yaml"))
}

/// Render `example` into `dir/out`; fails unless provision exits 0.
fn render(name: &str, dir: &Path) -> Result<PathBuf> {
    let out = dir.join(name);
    let (code, text) = provision(&[
        "render",
        &example(name).display().to_string(),
        "-o",
        &out.display().to_string(),
    ])?;
    ensure!(code == 0, "provision render {name} exited {code}:\n{text}");
    Ok(out)
}

/// Member directories of a rendered output.
fn nodes(out: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("nodes"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    ensure!(!v.is_empty(), "{} has no nodes/", out.display());
    Ok(v)
}

fn env_of(node: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(node.join("cairn.env"))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}

#[test]
fn render_every_example_certificates_verify_with_openssl_and_carry_sans_and_ekus() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for ex in EXAMPLES {
        let out = render(ex, dir.path())?;
        let ca = out.join("pki/ca.crt");
        for node in nodes(&out)? {
            let env = env_of(&node)?;
            let name = env.get("CAIRN_NAME").context("CAIRN_NAME missing")?;
            let pki = node.join("pki");
            let peer_ca = if pki.join("peer-ca.crt").exists() {
                pki.join("peer-ca.crt")
            } else {
                pki.join("ca.crt")
            };
            for (cert, trust) in [("server", pki.join("ca.crt")), ("peer", peer_ca)] {
                let crt = pki.join(format!("{cert}.crt"));
                tools::openssl_verify(&trust, &crt, Some("sslserver"))?;
                tools::openssl_verify(&trust, &crt, Some("sslclient"))?;
                let text = tools::cert_text(&crt)?;
                ensure!(
                    text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
                    "{ex}/{name} {cert}.crt lacks serverAuth+clientAuth EKU:\n{text}"
                );
                // Every address the member listens on (both families for dual stack) is a SAN, as
                // openssl prints it (IPv6 expanded, upper case).
                let listen = env.get("CAIRN_LISTEN_PEER_URLS").context("no peer URL")?;
                let mut want: Vec<String> =
                    vec!["IP Address:127.0.0.1".into(), "DNS:localhost".into()];
                for url in listen.split(',') {
                    let host = url
                        .trim_start_matches("https://")
                        .rsplit_once(':')
                        .map(|(h, _)| h.trim_matches(['[', ']']))
                        .unwrap_or("");
                    want.push(match host.parse::<std::net::IpAddr>()? {
                        std::net::IpAddr::V4(v4) => format!("IP Address:{v4}"),
                        std::net::IpAddr::V6(v6) => format!(
                            "IP Address:{}",
                            v6.segments().map(|s| format!("{s:X}")).join(":")
                        ),
                    });
                }
                for w in &want {
                    ensure!(
                        text.contains(w.as_str()),
                        "{ex}/{name} {cert}.crt: SAN {w} missing:\n{text}"
                    );
                }
                let key = pki.join(format!("{cert}.key"));
                let mode = std::fs::metadata(&key)?.permissions().mode() & 0o777;
                ensure!(
                    mode == 0o600,
                    "{} has mode {mode:o}, want 600",
                    key.display()
                );
            }
        }
        for client in ["admin", "prometheus"] {
            let crt = out.join(format!("pki/clients/{client}.crt"));
            tools::openssl_verify(&ca, &crt, Some("sslclient"))?;
            let text = tools::cert_text(&crt)?;
            ensure!(
                text.contains(&format!("CN = {client}")) || text.contains(&format!("CN={client}")),
                "{client}.crt subject:\n{text}"
            );
            ensure!(
                !text.contains("TLS Web Server Authentication"),
                "{client}.crt must be client-only"
            );
        }
        eprintln!("{ex}: certificates verified");
    }
    Ok(())
}

#[test]
fn dns_zone_passes_named_checkzone_with_every_check_fatal() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for (ex, domain) in [
        ("static3", "example.com"),
        ("dns3", "example.com"),
        ("dualstack", "ds.example.net"),
    ] {
        let out = render(ex, dir.path())?;
        let zone = out.join(format!("dns/{domain}.zone"));
        let text = std::fs::read_to_string(&zone)?;
        ensure!(
            text.contains(&format!("_etcd-server-ssl._tcp.{domain}.")),
            "{ex}: no server SRV:\n{text}"
        );
        ensure!(
            text.contains(&format!("_etcd-client-ssl._tcp.{domain}.")),
            "{ex}: no client SRV:\n{text}"
        );
        tools::named_checkzone(domain, &zone)?;
        ensure!(
            out.join("dns/nsupdate.txt").exists(),
            "{ex}: no nsupdate.txt"
        );
    }
    Ok(())
}

#[test]
fn systemd_unit_passes_verify_and_scores_at_most_2_0() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for ex in EXAMPLES {
        let out = render(ex, dir.path())?;
        let node = &nodes(&out)?[0];
        let unit = node.join("systemd/cairn.service");
        let text = std::fs::read_to_string(&unit)?;
        for must in [
            "Type=notify",
            "User=cairn",
            "Restart=on-failure",
            "RestartSec=5",
            "LimitNOFILE=65536",
            "EnvironmentFile=",
        ] {
            ensure!(text.contains(must), "{ex}: unit lacks {must}");
        }
        let root = tools::systemd_root(
            &dir.path().join(format!("root-{ex}")),
            &unit,
            "/usr/local/bin/cairn",
        )?;
        tools::systemd_verify(&root)?;
        let score = tools::systemd_exposure(&root)?;
        eprintln!("{ex}: systemd-analyze security exposure {score}");
        ensure!(score <= 2.0, "{ex}: exposure {score} > 2.0");
    }
    Ok(())
}

#[test]
fn rsyslog_dropin_passes_rsyslogd_config_check() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let conf = nodes(&out)?[0].join("rsyslog/30-cairn.conf");
    let text = std::fs::read_to_string(&conf)?;
    ensure!(
        text.contains("$programname == 'cairn'") && text.contains("stop"),
        "rsyslog drop-in:\n{text}"
    );
    tools::rsyslog_check(&conf)
}

#[test]
fn firewall_files_pass_nft_and_iptables_restore_checks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for ex in ["static3", "dualstack"] {
        for n in nodes(&render(ex, dir.path())?)? {
            tools::nft_check(&n.join("firewall/cairn.nft"))?;
        }
    }
    let d = render("dns3", dir.path())?;
    for n in nodes(&d)? {
        tools::iptables_check(&n.join("firewall/cairn.iptables"), false)?;
        tools::iptables_check(&n.join("firewall/cairn.ip6tables"), true)?;
    }
    let f = render("five", dir.path())?;
    for n in nodes(&f)? {
        // firewalld itself cannot run here; the script's shell is checked, and what it does is tested
        // below (firewalld_script_…) against a stand-in firewall-cmd.
        tools::run_ok(
            Command::new("sh")
                .arg("-n")
                .arg(n.join("firewall/cairn-firewalld.sh")),
        )?;
        let files: Vec<_> = std::fs::read_dir(n.join("firewall"))?.collect();
        ensure!(
            files.len() == 1,
            "firewalld renders one script and nothing else in {}",
            n.display()
        );
    }
    let l = render("local", dir.path())?;
    ensure!(
        !nodes(&l)?[0].join("firewall").exists(),
        "backend none must render no firewall"
    );
    Ok(())
}

#[test]
fn ansible_inventory_lists_every_member() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for ex in EXAMPLES {
        let out = render(ex, dir.path())?;
        let inv = tools::ansible_inventory(&out.join("ansible/inventory.yml"))?;
        let hosts = inv["cairn"]["hosts"]
            .as_array()
            .with_context(|| format!("{ex}: no cairn group: {inv}"))?;
        ensure!(
            hosts.len() == nodes(&out)?.len(),
            "{ex}: {} hosts in inventory",
            hosts.len()
        );
    }
    Ok(())
}

#[test]
fn rerender_keeps_certificates_and_reissues_only_what_is_missing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let manifest1 = std::fs::read_to_string(out.join("manifest.json"))?;
    let (code, text) = provision(&[
        "render",
        &example("static3").display().to_string(),
        "-o",
        &out.display().to_string(),
    ])?;
    ensure!(
        code == 0 && text.contains("all kept") && !text.contains("issued"),
        "second render:\n{text}"
    );
    let manifest2 = std::fs::read_to_string(out.join("manifest.json"))?;
    ensure!(
        manifest1 == manifest2,
        "manifest changed on an identical re-render"
    );
    std::fs::remove_file(out.join("nodes/infra1/pki/peer.crt"))?;
    let (code, text) = provision(&[
        "render",
        &example("static3").display().to_string(),
        "-o",
        &out.display().to_string(),
    ])?;
    ensure!(code == 0, "third render failed:\n{text}");
    let issued: Vec<&str> = text.lines().filter(|l| l.starts_with("issued")).collect();
    ensure!(
        issued.len() == 1
            && issued[0].contains("infra1/pki/peer.crt")
            && issued[0].contains("missing"),
        "expected only infra1 peer.crt reissued:\n{text}"
    );
    let (code, table) = provision(&[
        "certs",
        &example("static3").display().to_string(),
        "-o",
        &out.display().to_string(),
    ])?;
    ensure!(
        code == 0 && table.contains("DAYS LEFT") && table.contains("serverAuth,clientAuth"),
        "certs table:\n{table}"
    );
    Ok(())
}

#[test]
fn check_rejects_a_misspelt_field_with_did_you_mean_and_exit_2() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "cluster:\n  name: x\n  bootstrapp: static\nnodes:\n  - { name: a, address: 10.0.0.1 }\n",
    )?;
    let (code, text) = provision(&["check", &f.display().to_string()])?;
    ensure!(code == 2, "exit {code}, want 2:\n{text}");
    ensure!(
        text.contains("bad.yaml:3:") && text.contains("did you mean `bootstrap`"),
        "message:\n{text}"
    );
    Ok(())
}

/// Python one-liners (python3 is an ansible-core dependency) for a listener and a source-bound connect.
const LISTEN: &str = "import socket,sys,threading\n\
def serve(p):\n s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('0.0.0.0',p)); s.listen(16)\n while True:\n  c,_=s.accept(); c.close()\n\
for p in sys.argv[1:]: threading.Thread(target=serve,args=(int(p),),daemon=True).start()\n\
import time; time.sleep(60)\n";
const CONNECT: &str = "import socket,sys\n\
try:\n socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3,source_address=(sys.argv[3],0)).close(); print('open')\n\
except ConnectionRefusedError: print('refused')\n\
except OSError as e: print('error',e)\n";

#[test]
fn nftables_rules_let_members_reach_the_peer_port_and_refuse_others() -> Result<()> {
    tools::require("python3", "python3")?;
    tools::require("nft", "nftables")?;
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let nft = out.join("nodes/infra0/firewall/cairn.nft");
    let srv = tools::Netns::new("fwsrv")?;
    let cli = tools::Netns::new("fwcli")?;
    let (a, b) = (
        format!("cs{}", std::process::id() % 100000),
        format!("cc{}", std::process::id() % 100000),
    );
    tools::veth(&srv, &a, &cli, &b)?;
    srv.exec(&["ip", "addr", "add", "10.0.1.10/24", "dev", &a])?;
    srv.exec(&["ip", "addr", "add", "192.168.77.1/24", "dev", &a])?;
    for addr in ["10.0.1.11/24", "10.0.1.50/24", "192.168.77.5/24"] {
        cli.exec(&["ip", "addr", "add", addr, "dev", &b])?;
    }
    let nft_path = nft.display().to_string();
    srv.exec(&["nft", "-f", &nft_path])?;
    // Loading twice proves the file is re-loadable (it deletes its own table first).
    srv.exec(&["nft", "-f", &nft_path])?;
    let mut listener = srv
        .command("python3")
        .args(["-c", LISTEN, "2379", "2380"])
        .spawn()?;
    let probe = |dst: &str, port: &str, src: &str| -> Result<String> {
        Ok(cli
            .exec(&["python3", "-c", CONNECT, dst, port, src])?
            .trim()
            .to_string())
    };
    let result = (|| -> Result<()> {
        // Wait for the listener (from a member, which must eventually be let in).
        let mut last = String::new();
        for _ in 0..50 {
            last = probe("10.0.1.10", "2380", "10.0.1.11")?;
            if last == "open" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ensure!(last == "open", "peer port from member 10.0.1.11: {last}");
        let r = probe("10.0.1.10", "2380", "10.0.1.50")?;
        ensure!(
            r == "refused",
            "peer port from non-member 10.0.1.50: {r} (want refused)"
        );
        let r = probe("10.0.1.10", "2379", "10.0.1.50")?;
        ensure!(
            r == "open",
            "client port from client_sources 10.0.1.50: {r}"
        );
        let r = probe("192.168.77.1", "2379", "192.168.77.5")?;
        ensure!(
            r == "refused",
            "client port from outside client_sources: {r} (want refused)"
        );
        Ok(())
    })();
    let _ = listener.kill();
    let _ = listener.wait();
    result
}

#[test]
fn bad_template_override_is_a_config_error_naming_the_template() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let t = dir.path().join("tpl/systemd");
    std::fs::create_dir_all(&t)?;
    std::fs::write(
        t.join("cairn.service"),
        "[Service]\nExecStart={{ no_such_variable }}\n",
    )?;
    let (code, text) = provision(&[
        "render",
        &example("static3").display().to_string(),
        "-o",
        &dir.path().join("out").display().to_string(),
        "--templates",
        &dir.path().join("tpl").display().to_string(),
    ])?;
    if code != 2 || !text.contains("systemd/cairn.service") {
        bail!("exit {code}, want 2 naming the template:\n{text}");
    }
    Ok(())
}

#[test]
fn rotate_ca_reissues_every_leaf_and_nodes_trust_old_and_new_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let old_admin = dir.path().join("old-admin.crt");
    std::fs::copy(out.join("pki/clients/admin.crt"), &old_admin)?;
    let spec = example("static3").display().to_string();
    let (code, text) = provision(&[
        "certs",
        &spec,
        "-o",
        &out.display().to_string(),
        "--rotate-ca",
    ])?;
    ensure!(code == 0, "rotate-ca exited {code}:\n{text}");
    ensure!(
        text.contains("not signed by the current CA"),
        "leaves not reissued:\n{text}"
    );
    let trust = out.join("nodes/infra0/pki/ca.crt");
    // A client still holding a cert from the old CA is accepted during the rotation, and so is a new one.
    tools::openssl_verify(&trust, &old_admin, Some("sslclient"))?;
    tools::openssl_verify(
        &trust,
        &out.join("pki/clients/admin.crt"),
        Some("sslclient"),
    )?;
    // The new leaves chain to the new CA alone.
    tools::openssl_verify(
        &out.join("pki/ca.crt"),
        &out.join("nodes/infra0/pki/server.crt"),
        Some("sslserver"),
    )?;
    ensure!(
        tools::openssl_verify(&out.join("pki/ca.crt"), &old_admin, None).is_err(),
        "the old admin cert must not verify against the new CA alone"
    );
    Ok(())
}

#[test]
fn separate_ca_mode_peer_certs_do_not_chain_to_the_client_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("dns3", dir.path())?;
    let pki = out.join("nodes/infra0/pki");
    tools::openssl_verify(
        &pki.join("peer-ca.crt"),
        &pki.join("peer.crt"),
        Some("sslclient"),
    )?;
    ensure!(
        tools::openssl_verify(&pki.join("ca.crt"), &pki.join("peer.crt"), None).is_err(),
        "peer.crt must not chain to the client CA in `ca: separate`"
    );
    let env = env_of(&out.join("nodes/infra0"))?;
    ensure!(
        env.get("CAIRN_PEER_TRUSTED_CA_FILE")
            .is_some_and(|v| v.ends_with("pki/peer-ca.crt")),
        "peer trust must be peer-ca.crt: {env:?}"
    );
    ensure!(
        env.get("CAIRN_DISCOVERY_SRV").map(String::as_str) == Some("example.com"),
        "{env:?}"
    );
    ensure!(
        !env.contains_key("CAIRN_INITIAL_CLUSTER"),
        "dns mode must not set CAIRN_INITIAL_CLUSTER"
    );
    Ok(())
}

/// Children killed on drop, so a failing test leaves no cairn behind.
struct Members(Vec<std::process::Child>);

impl Drop for Members {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn local_example_env_files_start_a_real_three_member_cluster_that_etcdctl_uses() -> Result<()> {
    let cairn = workspace::binary("cairn")?;
    let etcdctl = tools::require("etcdctl", "etcd-client")?;
    let dir = tempfile::tempdir()?;
    let ports = cairn_tests::ports::free_ports(6)?;
    // examples/local.yaml with free ports instead of 2379/22379/32379 (other tests run in parallel).
    let mut yaml = std::fs::read_to_string(example("local"))?;
    for (i, (c, p)) in [("2379", "2380"), ("22379", "22380"), ("32379", "32380")]
        .iter()
        .enumerate()
    {
        yaml = yaml.replace(
            &format!("client_port: {c}, peer_port: {p}"),
            &format!(
                "client_port: {}, peer_port: {}",
                ports[2 * i],
                ports[2 * i + 1]
            ),
        );
    }
    std::fs::write(dir.path().join("local.yaml"), yaml)?;
    // Render from the directory cairn will start in: the env files' relative paths resolve there.
    let bin = workspace::binary("provision")?;
    tools::run_ok(Command::new(bin).current_dir(dir.path()).args([
        "render",
        "local.yaml",
        "-o",
        "out/local",
    ]))?;
    let mut members = Members(Vec::new());
    for name in ["infra0", "infra1", "infra2"] {
        let env = env_of(&dir.path().join("out/local/nodes").join(name))?;
        let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
        members.0.push(
            Command::new(&cairn)
                .current_dir(dir.path())
                .env_clear()
                .envs(&env)
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?,
        );
    }
    let pki = dir.path().join("out/local/pki");
    let endpoints = ports
        .iter()
        .step_by(2)
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ctl = |args: &[&str]| -> Result<String> {
        tools::run_ok(
            Command::new(&etcdctl)
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={endpoints}"))
                .arg(format!("--cacert={}", pki.join("ca.crt").display()))
                .arg(format!(
                    "--cert={}",
                    pki.join("clients/admin.crt").display()
                ))
                .arg(format!("--key={}", pki.join("clients/admin.key").display()))
                .args(args),
        )
    };
    cairn_tests::wait::wait_for(
        "the local cluster to accept a put",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(300),
        || ctl(&["put", "rendered", "yes"]).map_err(|e| e.to_string()),
    )?;
    // Members publish their names through Raft right after they start, like etcd; a put can be served
    // before every publish has been applied, so the names are waited for, not sampled once.
    cairn_tests::wait::wait_for(
        "every member's name in member list",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(300),
        || {
            let list = ctl(&["member", "list"]).map_err(|e| e.to_string())?;
            let named = ["infra0", "infra1", "infra2"]
                .iter()
                .all(|n| list.contains(&format!(", {n}, ")));
            if list.lines().count() == 3 && named {
                Ok(())
            } else {
                Err(format!("member list:\n{list}"))
            }
        },
    )?;
    let got = ctl(&["get", "rendered", "--print-value-only"])?;
    ensure!(got.trim() == "yes", "get: {got}");
    Ok(())
}

#[test]
fn moved_member_check_reports_uncovered_san_and_render_reissues_only_its_certs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let moved = dir.path().join("moved.yaml");
    std::fs::write(
        &moved,
        std::fs::read_to_string(example("static3"))?.replace("10.0.1.12", "10.0.1.13"),
    )?;
    let (m, o) = (moved.display().to_string(), out.display().to_string());
    let (code, text) = provision(&["check", &m, "-o", &o])?;
    ensure!(
        code == 2 && text.contains("infra2/pki/server.crt: SANs do not cover 10.0.1.13"),
        "check exit {code}:\n{text}"
    );
    let (code, text) = provision(&["render", &m, "-o", &o])?;
    let issued: Vec<&str> = text.lines().filter(|l| l.starts_with("issued")).collect();
    ensure!(
        code == 0
            && issued.len() == 2
            && issued
                .iter()
                .all(|l| l.contains("infra2") && l.contains("SANs do not cover 10.0.1.13")),
        "render:\n{text}"
    );
    let san = tools::cert_text(&out.join("nodes/infra2/pki/server.crt"))?;
    ensure!(
        san.contains("IP Address:10.0.1.13"),
        "reissued cert lacks the new address"
    );
    Ok(())
}

/// `provision ARGS` run in `cwd`; returns (exit code, stdout+stderr).
fn provision_in(cwd: &Path, args: &[&str]) -> Result<(i32, String)> {
    let run = cairn_tests::apply::provision(cwd, args)?;
    Ok((run.code.unwrap_or(-1), run.text))
}

/// Every file under `out` (relative), except what render does not list (manifest, attic/, apply/).
fn rendered_files(out: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, v: &mut Vec<String>) -> Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            let rel = p.strip_prefix(root)?.display().to_string();
            if ["manifest.json", "attic", "apply"].contains(&rel.as_str()) {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, v)?;
            } else {
                v.push(rel);
            }
        }
        Ok(())
    }
    let mut v = Vec::new();
    walk(out, out, &mut v)?;
    v.sort();
    Ok(v)
}

fn manifest_files(out: &Path) -> Result<Vec<String>> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json"))?)?;
    let mut v: Vec<String> = m["files"]
        .as_array()
        .context("manifest has no files")?
        .iter()
        .filter_map(|e| e["path"].as_str().map(String::from))
        .collect();
    v.sort();
    Ok(v)
}

/// Issue 19, item 10: switching the firewall backend and removing a member leaves exactly the files of
/// the new file; the removed member's keys move to attic/ with a line saying so.
#[test]
fn rerender_after_switching_firewall_and_removing_a_member_leaves_only_current_files() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let out = render("static3", dir.path())?;
    let changed = dir.path().join("changed.yaml");
    let text = std::fs::read_to_string(example("static3"))?
        .replace("backend: nftables", "backend: iptables");
    let cut = text
        .find("  - name: infra2")
        .context("static3 has infra2")?;
    std::fs::write(&changed, &text[..cut])?;
    let (code, said) = provision(&[
        "render",
        &changed.display().to_string(),
        "-o",
        &out.display().to_string(),
    ])?;
    ensure!(code == 0, "render exited {code}:\n{said}");
    for line in [
        "removed nodes/infra0/firewall/cairn.nft (the firewall backend is now iptables)",
        "removed nodes/infra2/cairn.env (member infra2 is no longer in",
    ] {
        ensure!(said.contains(line), "render did not say {line:?}:\n{said}");
    }
    let moved = said
        .lines()
        .find(|l| l.starts_with("moved nodes/infra2/pki/server.key to attic/"))
        .with_context(|| format!("the key's move is not reported:\n{said}"))?;
    let attic = moved
        .split(" to ")
        .nth(1)
        .and_then(|r| r.split(" (").next())
        .context("attic path")?;
    ensure!(out.join(attic).is_file(), "{attic} is not in the attic");
    let files = rendered_files(&out)?;
    ensure!(
        !files
            .iter()
            .any(|f| f.contains("infra2") || f.ends_with("cairn.nft")),
        "stale files left: {files:#?}"
    );
    ensure!(
        files
            .iter()
            .any(|f| f == "nodes/infra0/firewall/cairn.iptables"),
        "the new backend's files are missing: {files:#?}"
    );
    ensure!(
        manifest_files(&out)? == files,
        "manifest.json does not list exactly the files present"
    );
    Ok(())
}

/// Issue 19, item 9: the zone's serial changes exactly when its records change, and only goes up.
#[test]
fn zone_serial_stays_while_records_stay_and_rises_when_they_change() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = render("dns3", dir.path())?;
    let zone = out.join("dns/example.com.zone");
    let serial = |text: &str| -> Result<u64> {
        let after = text.split("SOA").nth(1).context("no SOA")?;
        let n = after
            .split_whitespace()
            .filter(|w| *w != "(")
            .nth(2)
            .context("no serial")?;
        Ok(n.parse()?)
    };
    let first = std::fs::read_to_string(&zone)?;
    let rerender = |file: &Path| -> Result<String> {
        let (code, said) = provision(&[
            "render",
            &file.display().to_string(),
            "-o",
            &out.display().to_string(),
        ])?;
        ensure!(code == 0, "render exited {code}:\n{said}");
        Ok(std::fs::read_to_string(&zone)?)
    };
    let same = rerender(&example("dns3"))?;
    ensure!(
        same == first,
        "an unchanged zone was rewritten:\n{first}\n---\n{same}"
    );
    let moved = dir.path().join("moved.yaml");
    std::fs::write(
        &moved,
        std::fs::read_to_string(example("dns3"))?.replace("10.0.1.12", "10.0.1.13"),
    )?;
    let second = rerender(&moved)?;
    ensure!(
        serial(&second)? == serial(&first)? + 1,
        "a changed record must raise the serial by one the same day:\n{first}\n---\n{second}"
    );
    std::fs::write(
        &moved,
        std::fs::read_to_string(example("dns3"))?.replace("10.0.1.12", "10.0.1.14"),
    )?;
    let third = rerender(&moved)?;
    ensure!(
        serial(&third)? == serial(&second)? + 1,
        "second change the same day:\n{third}"
    );
    tools::named_checkzone("example.com", &zone)?;
    Ok(())
}

/// Issue 19, item 13: render without -o writes where apply reads, out/<cluster name>.
#[test]
fn render_defaults_to_the_same_directory_as_apply() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::copy(example("static3"), dir.path().join("c.yaml"))?;
    let (code, said) = provision_in(dir.path(), &["render", "c.yaml"])?;
    ensure!(code == 0, "render exited {code}:\n{said}");
    ensure!(
        said.contains("rendered c.yaml into out/etcd-cluster-1")
            && dir
                .path()
                .join("out/etcd-cluster-1/manifest.json")
                .is_file(),
        "{said}"
    );
    let (code, table) = provision_in(dir.path(), &["certs", "c.yaml"])?;
    ensure!(
        code == 0 && table.contains("DAYS LEFT"),
        "certs without -o:\n{table}"
    );
    Ok(())
}

/// What `provision check FILE` says and its exit code, for a file written from `yaml`.
fn check(dir: &Path, yaml: &str) -> Result<(i32, String)> {
    let f = dir.join("cluster.yaml");
    std::fs::write(&f, yaml)?;
    provision_in(dir, &["check", "cluster.yaml"])
}

const THREE: &str = "cluster:\n  name: c1\nnodes:\n  - { name: a, address: 10.0.0.1 }\n  - { name: b, address: 10.0.0.2 }\n  - { name: c, address: 10.0.0.3 }\n";

/// Issue 19, items 3-6 and 14 as an operator meets them: exit 2, FILE:LINE:COL, the field, the fix.
#[test]
fn check_refuses_what_would_break_on_the_hosts_with_line_column_and_fix() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cases: &[(String, &str)] = &[
        (
            THREE.replace("10.0.0.2 }", "10.0.0.2, client_port: 443 }"),
            "cluster.yaml:5:48: nodes[1].client_port: port 443 is privileged (below 1024)",
        ),
        (
            THREE.replace("10.0.0.1", "0.0.0.0"),
            "cluster.yaml:4:25: nodes[0].address: 0.0.0.0 cannot be a member's address: it is the unspecified address",
        ),
        (
            THREE.replace("name: c1\n", "name: c1\n  data_dir: ./data\n"),
            "cluster.yaml:3:13: cluster.data_dir: data_dir \"./data\" is relative, but member a is reached over ssh",
        ),
        (
            THREE.replace("name: c1\n", "name: c1\n  data_dir: /var/lib/{nmae}\n"),
            "fix: did you mean `name`?",
        ),
        (
            format!("{THREE}tls: {{ clients: [prometheus] }}\n"),
            "tls.clients: no `admin` identity",
        ),
        (
            THREE.replace("10.0.0.1", "10.10.0.300"),
            "nodes[0].address: \"10.10.0.300\" is not a valid IPv4 address",
        ),
        (
            format!("{THREE}---\nmore: 1\n"),
            "cluster.yaml:7:1: a second YAML document starts here",
        ),
        (String::new(), "cluster.yaml:1:1: the file is empty (or only comments)"),
        (
            THREE.replace("10.0.0.3", "\"fd00::3\""),
            "they share no address family, so they can never reach each other",
        ),
    ];
    for (yaml, want) in cases {
        let (code, said) = check(dir.path(), yaml)?;
        ensure!(code == 2, "exit {code}, want 2 for:\n{yaml}\n{said}");
        ensure!(
            said.contains(want),
            "want {want:?} in:\n{said}\nfor:\n{yaml}"
        );
    }
    // Four problems, two of them about the file's shape: all reported, in file order.
    let (code, said) = check(
        dir.path(),
        "cluster:\n  name: c1\n  client_port: abc\n  bootstrapp: dns\nnodes:\n  - { name: a, address: 10.0.0.1 }\n  - { name: b, address: 10.10.0.300 }\n  - { name: c, address: 10.0.0.3, hostname: \"-x-\" }\n",
    )?;
    ensure!(code == 2 && said.contains("4 error(s)"), "{said}");
    for want in [
        "cluster.yaml:3:16: cluster.client_port: expected a port between 1 and 65535, got \"abc\"",
        "cluster.yaml:4:3: cluster.bootstrapp: unknown field `bootstrapp`",
        "cluster.yaml:7:25: nodes[1].address:",
        "cluster.yaml:8:45: nodes[2].hostname:",
    ] {
        ensure!(said.contains(want), "want {want:?} in:\n{said}");
    }
    // Item 14: the verdict uses the file's own spellings.
    let (code, said) = check(
        dir.path(),
        &THREE
            .replace(
                "name: c1\n",
                "name: c1\n  bootstrap: dns\n  dns: { domain: example.com }\n",
            )
            .replace("10.0.0.1 }", "10.0.0.1, hostname: a.example.com }")
            .replace("10.0.0.2 }", "10.0.0.2, hostname: b.example.com }")
            .replace("10.0.0.3 }", "10.0.0.3, hostname: c.example.com }"),
    )?;
    ensure!(code == 0, "{said}");
    ensure!(
        said.contains("ok (3 members, IPv4, bootstrap dns, tls off, firewall none)"),
        "{said}"
    );
    Ok(())
}

/// Issue 19, items 1 and 2 through the CLI: a CA key that is not the certificate's, and an expired CA
/// left in the output directory, stop check/render before a host sees them.
#[test]
fn a_ca_that_cannot_sign_stops_check_and_render() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let other = tempfile::tempdir()?;
    // Two CAs from two renders: the first's certificate with the second's key.
    let a = render("static3", dir.path())?;
    let b = render("static3", other.path())?;
    std::fs::copy(a.join("pki/ca.crt"), dir.path().join("ca.crt"))?;
    std::fs::copy(b.join("pki/ca.key"), dir.path().join("ca.key"))?;
    let (code, said) = check(
        dir.path(),
        &format!("{THREE}tls: {{ import_ca: {{ cert: ca.crt, key: ca.key }} }}\n"),
    )?;
    ensure!(code == 2, "exit {code}:\n{said}");
    ensure!(
        said.contains("tls.import_ca.key:")
            && said.contains("is not the private key of")
            && said.contains("\"certificate signature failure\""),
        "{said}"
    );
    // An output directory whose CA has expired: render refuses and says how to rotate.
    let key = rcgen::KeyPair::generate()?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.not_before = rcgen::date_time_ymd(2019, 1, 1);
    p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    std::fs::write(a.join("pki/ca.crt"), p.self_signed(&key)?.pem())?;
    std::fs::write(a.join("pki/ca.key"), key.serialize_pem())?;
    let (code, said) = provision(&[
        "render",
        &example("static3").display().to_string(),
        "-o",
        &a.display().to_string(),
    ])?;
    ensure!(
        code == 2 && said.contains("pki/ca.crt: the CA expired on") && said.contains("--rotate-ca"),
        "exit {code}:\n{said}"
    );
    let (code, said) = check(dir.path(), "")?;
    ensure!(code == 2, "{said}");
    Ok(())
}

/// A stand-in for `firewall-cmd` (firewalld needs D-Bus and would take over this machine's firewall):
/// the permanent rich rules of each zone in `$FWSTATE/<zone>`, one per line.
const FIREWALL_CMD: &str = r#"#!/bin/sh
zone=public; action=""; rule=""
for a in "$@"; do
  case "$a" in
    --permanent) ;;
    --zone=*) zone=${a#--zone=} ;;
    --list-rich-rules) action=list ;;
    --add-rich-rule=*) action=add; rule=${a#--add-rich-rule=} ;;
    --remove-rich-rule=*) action=remove; rule=${a#--remove-rich-rule=} ;;
    --reload) action=reload ;;
    *) echo "firewall-cmd stand-in: unknown argument $a" >&2; exit 2 ;;
  esac
done
f="$FWSTATE/$zone"; touch "$f"
case $action in
  list) cat "$f" ;;
  add) grep -qxF "$rule" "$f" || echo "$rule" >> "$f" ;;
  remove) grep -vxF "$rule" "$f" > "$f.t"; mv "$f.t" "$f" ;;
  reload) echo reload >> "$FWSTATE/reloads" ;;
esac
"#;

/// Issue 19, item 12: the firewalld script does what its header says: rich rules in $ZONE for the peer
/// port from the members (both families) and the client port, replacing its earlier rules and leaving
/// every other rule of the zone alone.
#[test]
fn firewalld_script_keeps_exactly_the_current_rules_in_the_zone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::write(bin.join("firewall-cmd"), FIREWALL_CMD)?;
    std::fs::set_permissions(
        bin.join("firewall-cmd"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state)?;
    let ssh_rule = r#"rule family="ipv4" source address="10.9.9.9" service name="ssh" accept"#;
    std::fs::write(state.join("internal"), format!("{ssh_rule}\n"))?;
    let yaml = std::fs::read_to_string(example("dualstack"))?
        .replace("backend: nftables", "backend: firewalld");
    let file = dir.path().join("ds.yaml");
    let run = |yaml: &str| -> Result<Vec<String>> {
        std::fs::write(&file, yaml)?;
        let out = dir.path().join("out");
        let (code, said) = provision(&[
            "render",
            &file.display().to_string(),
            "-o",
            &out.display().to_string(),
        ])?;
        ensure!(code == 0, "render exited {code}:\n{said}");
        let script = out.join("nodes/m0/firewall/cairn-firewalld.sh");
        let head = std::fs::read_to_string(&script)?;
        ensure!(
            head.contains("adds rich rules to the firewalld zone\n# $ZONE"),
            "header:\n{head}"
        );
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        tools::run_ok(
            Command::new("sh")
                .arg(&script)
                .env("PATH", path)
                .env("ZONE", "internal")
                .env("FWSTATE", &state),
        )?;
        let mut rules: Vec<String> = std::fs::read_to_string(state.join("internal"))?
            .lines()
            .map(String::from)
            .collect();
        rules.sort();
        Ok(rules)
    };
    let rule = |fam: &str, src: &str, port: u16| {
        format!(
            r#"rule family="{fam}" source address="{src}" port port="{port}" protocol="tcp" accept"#
        )
    };
    let first = run(&yaml)?;
    let mut want = vec![
        ssh_rule.to_string(),
        rule("ipv6", "fd00:3::11", 2380),
        rule("ipv6", "fd00:3::12", 2380),
        rule("ipv4", "10.0.3.11", 2380),
    ];
    for (fam, src) in [
        ("ipv4", "10.0.3.0/24"),
        ("ipv4", "10.0.3.10"),
        ("ipv4", "10.0.3.11"),
        ("ipv6", "fd00:3::/64"),
        ("ipv6", "fd00:3::10"),
        ("ipv6", "fd00:3::11"),
        ("ipv6", "fd00:3::12"),
    ] {
        want.push(rule(fam, src, 2379));
    }
    want.sort();
    ensure!(
        first == want,
        "rules after the first run:\n{first:#?}\nwant:\n{want:#?}"
    );
    ensure!(run(&yaml)? == want, "a second run must change nothing");
    // m1 leaves the cluster: its addresses leave the zone's rules, nothing else does.
    let cut = yaml.find("  - { name: m1").context("m1")?;
    let end = cut + yaml[cut..].find('\n').context("line")? + 1;
    let smaller = format!("{}{}", &yaml[..cut], &yaml[end..]);
    let after = run(&smaller)?;
    ensure!(
        !after
            .iter()
            .any(|r| r.contains("::11\"") || r.contains("10.0.3.11\""))
            && after.contains(&ssh_rule.to_string()),
        "rules after m1 left:\n{after:#?}"
    );
    Ok(())
}
