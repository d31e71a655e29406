//! One example file per rule of spec/rules.rs, and provision/README.md's refusal table generated from
//! what `check` says for each: a rule without an example does not compile, a rule whose example does not
//! trigger it fails, and a README that differs from the generated table fails (run with
//! `PROVISION_BLESS=1` to rewrite the table).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use super::{problems, problems_in, OK};
use crate::spec::Rule;

/// CA certificates and keys for the import_ca rules, with fixed dates so the messages are stable.
pub(super) struct Fixtures {
    pub dir: tempfile::TempDir,
}

/// Midnight UTC of January 1st of `year`.
fn new_year(year: i32) -> time::OffsetDateTime {
    time::Date::from_calendar_date(year, time::Month::January, 1)
        .expect("a date")
        .midnight()
        .assume_utc()
}

fn cert(dir: &Path, name: &str, ca: bool, from: time::OffsetDateTime, to: time::OffsetDateTime) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p.not_before = from;
    p.not_after = to;
    let c = p.self_signed(&key).expect("cert");
    std::fs::write(dir.join(format!("{name}.crt")), c.pem()).expect("write");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
}

impl Fixtures {
    pub fn new() -> Fixtures {
        let dir = tempfile::tempdir().expect("tmp dir");
        let p = dir.path();
        let now = time::OffsetDateTime::now_utc();
        cert(
            p,
            "ca",
            true,
            now - time::Duration::days(1),
            now + time::Duration::days(3650),
        );
        cert(
            p,
            "other",
            true,
            now - time::Duration::days(1),
            now + time::Duration::days(3650),
        );
        cert(p, "expired", true, new_year(2019), new_year(2020));
        cert(p, "future", true, new_year(2099), new_year(2100));
        cert(
            p,
            "leaf",
            false,
            now - time::Duration::days(1),
            now + time::Duration::days(365),
        );
        std::fs::write(p.join("garbage.txt"), "not a certificate\n").expect("write");
        Fixtures { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

fn with(section: &str) -> String {
    format!("{OK}{section}\n")
}

fn cluster(fields: &str) -> String {
    OK.replace("name: c1\n", &format!("name: c1\n{fields}"))
}

fn import(cert: &str, key: &str) -> String {
    with(&format!(
        "tls: {{ import_ca: {{ cert: {cert}, key: {key} }} }}"
    ))
}

/// `bootstrap: discovery` with the given `cluster.discovery` fields.
fn discovery(fields: &str) -> String {
    cluster(&format!(
        "  bootstrap: discovery\n  discovery: {{ {fields} }}\n"
    ))
}

/// TLS with the clients `apiserver` and `backup`, and an `auth:` section with `roles` (flow style).
fn auth(roles: &str) -> String {
    with(&format!(
        "tls: {{ clients: [admin, apiserver, backup] }}\nauth: {{ roles: [{roles}] }}"
    ))
}

/// A file that breaks `rule` (and, where possible, nothing else).
fn example(rule: Rule) -> String {
    use Rule::*;
    match rule {
        YamlSyntax => "cluster:\n  name: [c1\nnodes: []\n".into(),
        EmptyFile => "# nothing here yet\n".into(),
        SecondDocument => format!("{OK}---\ncluster: {{ name: c2 }}\n"),
        YamlAlias => "cluster: { name: c1 }\nnodes:\n  - &a { name: a, address: 10.0.0.1 }\n  - *a\n".into(),
        YamlTag => OK.replace("name: c1", "name: !!str c1"),
        TooDeep => format!("cluster: {{ name: c1 }}\nnodes: {}a{}\n", "[".repeat(17), "]".repeat(17)),
        DuplicateKey => cluster("  name: c2\n"),
        UnknownField => cluster("  bootstrapp: dns\n"),
        MissingField => OK.replace("{ name: b, address: 10.0.0.2 }", "{ name: b }"),
        WrongType => "cluster: { name: c1 }\nnodes: { name: a, address: 10.0.0.1 }\n".into(),
        BadPort => cluster("  client_port: 70000\n"),
        BadNumber => with("tls: { validity_days: 90d }"),
        UnknownValue => with("firewall: { backend: nftable }"),
        BadClusterName => OK.replace("name: c1", "name: my cluster"),
        BadDomain => cluster("  dns: { domain: \"exa mple.com\" }\n"),
        BadSrvName => cluster("  dns: { domain: example.com, srv_name: a.b }\n"),
        DnsWithoutDomain => cluster("  bootstrap: dns\n"),
        BadNameServer => cluster("  dns: { domain: example.com, name_servers: [\"-ns-\"] }\n"),
        NameServerWithoutAddress => {
            cluster("  dns: { domain: example.com, name_servers: [ns1.example.com] }\n")
        }
        ZoneWithoutNameServer => cluster("  dns: { domain: example.com }\n"),
        DiscoveryWithoutSection => cluster("  bootstrap: discovery\n"),
        DiscoveryNotBootstrap => {
            cluster("  discovery: { endpoints: [http://10.0.9.1:2379], token: t1 }\n")
        }
        DiscoveryWithDns => discovery("endpoints: [http://10.0.9.1:2379], token: t1")
            .replace("name: c1\n", "name: c1\n  dns: { domain: example.com }\n"),
        DiscoveryNoEndpoints => discovery("endpoints: [], token: t1"),
        BadDiscoveryEndpoint => {
            discovery("endpoints: [\"http://10.0.9.1:2379/v2/keys/discovery\"], token: t1")
        }
        DiscoveryMixedSchemes => discovery(
            "endpoints: [http://10.0.9.1:2379, https://10.0.9.2:2379], token: t1, ca: ca.crt",
        ),
        BadDiscoveryToken => discovery("endpoints: [http://10.0.9.1:2379], token: \"\""),
        DiscoveryTlsMismatch => discovery("endpoints: [https://10.0.9.1:2379], token: t1"),
        DiscoveryCertWithoutKey => discovery(
            "endpoints: [https://10.0.9.1:2379], token: t1, ca: ca.crt, cert: leaf.crt",
        ),
        DiscoveryFileUnreadable => {
            discovery("endpoints: [https://10.0.9.1:2379], token: t1, ca: missing.crt")
        }
        PrivilegedPort => cluster("  client_port: 443\n"),
        EmptyPath => cluster("  data_dir: \"\"\n"),
        RelativePathOverSsh => cluster("  data_dir: ./data/{name}\n"),
        UnknownPlaceholder => cluster("  data_dir: /var/lib/cairn/{nmae}\n"),
        LogFileNotAbsolute => with("logging: { file: cairn.log }"),
        ZeroValidity => with("tls: { validity_days: 0 }"),
        RenewNotBelowValidity => with("tls: { validity_days: 30, renew_before_days: 30 }"),
        CaShorterThanLeaves => with("tls: { ca_validity_days: 100, validity_days: 397 }"),
        ImportCaWithSeparate => {
            with("tls: { ca: separate, import_ca: { cert: ca.crt, key: ca.key } }")
        }
        ImportCaUnreadable => import("missing.crt", "ca.key"),
        ImportCaNotPem => import("garbage.txt", "ca.key"),
        ImportCaExpired => import("expired.crt", "expired.key"),
        ImportCaNotYetValid => import("future.crt", "future.key"),
        ImportCaNotCa => import("leaf.crt", "leaf.key"),
        ImportCaKeyMismatch => import("ca.crt", "other.key"),
        BadClientName => with("tls: { clients: [admin, \"ops team\"] }"),
        DuplicateClient => with("tls: { clients: [admin, admin] }"),
        NoAdminClient => with("tls: { clients: [prometheus] }"),
        BadClientSource => with("firewall: { client_sources: [10.0.0.0/33] }"),
        BadNamespace => with("monitoring: { kubernetes: true, namespace: Monitoring }"),
        ZeroHealthTimeout => with("apply: { health_timeout_seconds: 0 }"),
        BadRaftTiming => cluster("  heartbeat_interval_ms: 1000\n  election_timeout_ms: 3000\n"),
        AuthWithoutTls => with("auth: { roles: [{ name: apiserver, clients: [apiserver] }] }"),
        BadRoleName => auth("{ name: \"api server\", clients: [apiserver] }"),
        DuplicateRole => auth("{ name: api, clients: [apiserver] }, { name: api, clients: [backup] }"),
        RootRoleRedefined => auth("{ name: root, clients: [backup] }"),
        UnknownAuthClient => auth("{ name: api, clients: [apiservr] }"),
        ReservedAuthClient => auth("{ name: api, clients: [admin] }"),
        PermissionTarget => auth("{ name: api, permissions: [{ access: read }] }"),
        EmptyPermissionRange => auth("{ name: api, permissions: [{ access: read, from: /m, to: /a }] }"),
        OverlappingPermissions => auth(
            "{ name: api, permissions: [{ access: read, prefix: /registry/ }, \
             { access: write, key: /registry/pods/a }] }",
        ),
        NoMembers => "cluster: { name: c1 }\nnodes: []\n".into(),
        BadMemberName => OK.replace("name: a,", "name: a/b,"),
        DuplicateMemberName => OK.replace("name: b,", "name: a,"),
        AddressIsHostname => OK.replace("10.0.0.1", "infra0.example.com"),
        BadAddress => OK.replace("10.0.0.1", "10.10.0.300"),
        UnusableAddress => OK.replace("10.0.0.1", "0.0.0.0"),
        LoopbackOverSsh => OK.replace("10.0.0.1", "127.0.0.1"),
        DuplicateAddress => OK.replace("10.0.0.3", "10.0.0.1"),
        SocketClash => "cluster: { name: c1, transport: local }\nnodes:\n  - { name: a, address: 127.0.0.1 }\n  - { name: b, address: 127.0.0.1, client_port: 2380, peer_port: 2381 }\n  - { name: c, address: 127.0.0.1, client_port: 3379, peer_port: 3380 }\n".into(),
        SamePortTwice => OK.replace("10.0.0.2 }", "10.0.0.2, peer_port: 2379 }"),
        BadHostname => OK.replace("10.0.0.1 }", "10.0.0.1, hostname: \"a..example.com\" }"),
        DuplicateHostname => OK
            .replace("10.0.0.1 }", "10.0.0.1, hostname: a.example.com }")
            .replace("10.0.0.2 }", "10.0.0.2, hostname: a.example.com }"),
        HostnameMissingForDns => cluster("  bootstrap: dns\n  dns: { domain: example.com }\n")
            .replace("10.0.0.1 }", "10.0.0.1, hostname: a.example.com }")
            .replace("10.0.0.2 }", "10.0.0.2, hostname: b.example.com }"),
        HostnameOutsideDomain => cluster("  bootstrap: dns\n  dns: { domain: example.com }\n")
            .replace("10.0.0.1 }", "10.0.0.1, hostname: a.example.org }")
            .replace("10.0.0.2 }", "10.0.0.2, hostname: b.example.com }")
            .replace("10.0.0.3 }", "10.0.0.3, hostname: c.example.com }"),
        NoCommonFamily => OK.replace("10.0.0.3", "\"fd00::3\""),
        SshOnLocalMember => cluster("  transport: local\n")
            .replace("10.0.0.1 }", "127.0.0.1, ssh: { user: root } }")
            .replace("10.0.0.2", "127.0.0.2")
            .replace("10.0.0.3", "127.0.0.3"),
        EvenMembers => OK.replace("  - { name: c, address: 10.0.0.3 }\n", ""),
        PeerFamilyNotFirst => OK
            .replace("10.0.0.1 }", "[10.0.0.1, \"fd00::1\"] }")
            .replace("10.0.0.2 }", "\"fd00::2\" }")
            .replace("10.0.0.3 }", "\"fd00::3\" }"),
    }
}

/// The problem `rule`'s example gives for that rule, with the fixture directory taken out of it.
fn triggered(fx: &Fixtures, rule: Rule) -> crate::spec::Problem {
    let yaml = example(rule);
    let found = if rule.is_warning() {
        match crate::spec::parse("cluster.yaml", &fx.path(), &yaml) {
            Ok(s) => s.warnings,
            Err(e) => panic!("{rule:?}: the example of a warning must be accepted:\n{e}"),
        }
    } else {
        problems_in(&fx.path(), &yaml)
    };
    let mut p = found
        .iter()
        .find(|p| p.rule == rule)
        .cloned()
        .unwrap_or_else(|| {
            panic!("{rule:?}: its example does not trigger it:\n{yaml}\ngot {found:#?}")
        });
    let dir = format!("{}/", fx.path().display());
    p.message = p.message.replace(&dir, "");
    p.fix = p.fix.replace(&dir, "");
    p
}

#[test]
fn every_rule_is_triggered_by_its_example_at_a_location() {
    let fx = Fixtures::new();
    for rule in Rule::ALL {
        let p = triggered(&fx, *rule);
        assert!(p.pos.line >= 1 && p.pos.column >= 1, "{rule:?}: {p:?}");
        assert!(!p.fix.is_empty(), "{rule:?} has no fix: {p:?}");
    }
}

// Issue 19, items 1 and 2: a CA that cannot sign what it should.

#[test]
fn an_imported_ca_key_that_does_not_match_its_certificate_is_refused() {
    let fx = Fixtures::new();
    let p = triggered(&fx, Rule::ImportCaKeyMismatch);
    assert_eq!(p.field, "tls.import_ca.key");
    assert_eq!(
        p.message,
        "other.key is not the private key of ca.crt: every certificate signed with it would fail \
         verification (\"certificate signature failure\")"
    );
}

#[test]
fn an_expired_ca_and_a_ca_shorter_than_its_leaves_are_refused() {
    let fx = Fixtures::new();
    let p = triggered(&fx, Rule::ImportCaExpired);
    assert!(
        p.message
            .starts_with("imported CA expired.crt expired on 2020-01-01"),
        "{p}"
    );
    let p = triggered(&fx, Rule::CaShorterThanLeaves);
    assert_eq!(p.field, "tls.ca_validity_days");
    assert_eq!(
        p.message,
        "the CA would be valid for 100 days but the certificates it signs for 397: they would outlive it \
         and fail verification once it expires"
    );
}

/// The README table: field, condition, and what `check` says for the rule's example.
fn table(fx: &Fixtures) -> String {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut t =
        String::from("| field | refused when | `check` says (for example) |\n|---|---|---|\n");
    for rule in Rule::ALL {
        let p = triggered(fx, *rule);
        t.push_str(&format!(
            "| {} | {} | {} |\n",
            rule.fields(),
            esc(rule.condition()),
            esc(format!("{}: {} (fix: {})", p.field, p.message, p.fix).trim_start_matches(": "))
        ));
    }
    t
}

const BEGIN: &str =
    "<!-- refusal table: generated by `cargo test -p provision refusal_table` -->\n";
const END: &str = "<!-- end of refusal table -->\n";

#[test]
fn refusal_table_in_the_readme_is_generated_from_the_rules() {
    let fx = Fixtures::new();
    let want = table(&fx);
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&readme).expect("provision/README.md");
    let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
        panic!("provision/README.md lacks the markers {BEGIN:?} … {END:?}");
    };
    let have = &text[b + BEGIN.len()..e];
    if have != want {
        if std::env::var_os("PROVISION_BLESS").is_some() {
            let new = format!("{}{BEGIN}{want}{}", &text[..b], &text[e..]);
            std::fs::write(&readme, new).expect("write README");
            return;
        }
        panic!(
            "provision/README.md's refusal table differs from the rules; rerun with PROVISION_BLESS=1 to \
             rewrite it. Generated:\n{want}"
        );
    }
}

// Issue 18: `bootstrap: discovery` carries cairn's v3 discovery flags instead of --initial-cluster.

#[test]
fn discovery_bootstrap_renders_token_endpoints_and_tls_files_instead_of_initial_cluster() {
    let fx = Fixtures::new();
    let yaml = discovery(
        "endpoints: [\"https://10.0.9.1:2379/\", https://10.0.9.2:2379], token: abc, ca: ca.crt, \
         cert: leaf.crt, key: leaf.key",
    );
    let s = crate::spec::parse("cluster.yaml", &fx.path(), &yaml)
        .unwrap_or_else(|e| panic!("valid discovery file refused:\n{e}"));
    let d = s.discovery.as_ref().expect("discovery settings");
    assert_eq!(d.size_key(), "/_etcd/registry/abc/_config/size");
    let vars: std::collections::BTreeMap<String, String> =
        crate::render::env::vars(&s, &s.nodes[0])
            .into_iter()
            .collect();
    let get = |k: &str| vars.get(k).map(String::as_str);
    assert_eq!(get("CAIRN_INITIAL_CLUSTER"), None, "{vars:#?}");
    assert_eq!(get("CAIRN_DISCOVERY_TOKEN"), Some("abc"));
    assert_eq!(
        get("CAIRN_DISCOVERY_ENDPOINTS"),
        Some("https://10.0.9.1:2379,https://10.0.9.2:2379")
    );
    assert_eq!(get("CAIRN_DISCOVERY_INSECURE_TRANSPORT"), Some("false"));
    assert_eq!(
        get("CAIRN_DISCOVERY_CACERT"),
        Some("/etc/cairn/pki/discovery-ca.crt")
    );
    assert_eq!(
        get("CAIRN_DISCOVERY_KEY"),
        Some("/etc/cairn/pki/discovery-client.key")
    );
    let files = crate::render::discovery::render(&s, &s.nodes[0]).expect("copies");
    let key = files
        .iter()
        .find(|a| a.path.ends_with("pki/discovery-client.key"))
        .expect("the client key is copied");
    assert_eq!(key.mode, 0o600);
    let nix = crate::render::nix::member(&s, &s.nodes[0]);
    assert!(
        nix.contains("token = \"abc\";") && !nix.contains("initialCluster ="),
        "{nix}"
    );
}

#[test]
fn a_missing_discovery_token_is_refused_with_its_field_path() {
    let p = problems_in(
        Path::new("."),
        &discovery("endpoints: [http://10.0.9.1:2379]"),
    );
    assert!(
        p.iter()
            .any(|p| p.rule == Rule::MissingField && p.field == "cluster.discovery.token"),
        "{p:#?}"
    );
}

// Issue 17: the `auth:` section.

#[test]
fn an_auth_section_becomes_roles_with_etcd_key_ranges_and_client_users() {
    let s = crate::spec::parse(
        "cluster.yaml",
        Path::new("."),
        &auth(
            "{ name: apiserver, clients: [apiserver], permissions: [{ access: readwrite, prefix: /registry/ }] }, \
             { name: backup, clients: [backup, apiserver], permissions: [{ access: read, prefix: \"\" }, \
             ] }, { name: ranges, permissions: [{ access: write, from: /a, to: /ab }, { access: read, from: /c }, \
             { access: read, key: /b0 }] }",
        ),
    )
    .unwrap_or_else(|e| panic!("valid auth section refused:\n{e}"));
    let a = s.auth.expect("auth");
    let perms = |i: usize| {
        a.roles[i]
            .permissions
            .iter()
            .map(|p| (p.describe(), p.access))
            .collect::<Vec<_>>()
    };
    use crate::spec::Access::*;
    assert_eq!(perms(0), [("prefix \"/registry/\"".to_string(), ReadWrite)]);
    assert_eq!(a.roles[0].permissions[0].range_end, b"/registry0");
    assert_eq!(perms(1), [("every key".to_string(), Read)]);
    assert_eq!(
        perms(2),
        [
            ("range [\"/a\", \"/ab\")".to_string(), Write),
            ("key \"/b0\"".to_string(), Read),
            ("keys from \"/c\" on".to_string(), Read),
        ]
    );
    let users = a.client_roles();
    assert_eq!(users["apiserver"], ["apiserver", "backup"]);
    assert_eq!(users["backup"], ["backup"]);
}

#[test]
fn an_unknown_permission_kind_is_refused_at_its_field_with_the_closest_kind() {
    let p = problems(&auth(
        "{ name: api, clients: [apiserver], permissions: [{ access: readwrit, prefix: /registry/ }] }",
    ));
    let p = p
        .iter()
        .find(|p| p.rule == Rule::UnknownValue)
        .unwrap_or_else(|| panic!("{p:#?}"));
    assert_eq!(p.field, "auth.roles[0].permissions[0].access");
    assert!(p.fix.contains("did you mean `readwrite`?"), "{p}");
}

#[test]
fn an_unknown_client_is_refused_with_the_role_and_the_field_path() {
    let fx = Fixtures::new();
    let p = triggered(&fx, Rule::UnknownAuthClient);
    assert_eq!(p.field, "auth.roles[0].clients[0]");
    assert_eq!((p.pos.line, p.pos.column), (8, 40));
    assert!(p.fix.starts_with("did you mean `apiserver`?"), "{p}");
    let p = triggered(&fx, Rule::OverlappingPermissions);
    assert_eq!(p.field, "auth.roles[0].permissions[1]");
    assert!(
        p.message
            .starts_with("key \"/registry/pods/a\" overlaps prefix \"/registry/\""),
        "{p}"
    );
}

#[test]
fn the_auth_example_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/auth.yaml");
    let s = crate::spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let a = s.auth.expect("examples/auth.yaml has an auth section");
    let names: Vec<&str> = a.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["apiserver", "backup"]);
}
