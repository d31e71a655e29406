//! Random and mutated cluster files for the property test of `provision check`/`render`: a seeded
//! generator (the same seed gives the same files), biased towards the fields and values a cluster file
//! has, valid and invalid, plus byte- and line-level mutations of real files.

use provision::spec::{NODE_FIELDS, SECTIONS};

/// xorshift64*: small, seeded, good enough to spread cases.
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.bits() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.bits() % 100 < percent
    }

    /// One element of `xs`.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// A YAML value to print.
enum Value {
    /// Already written as it should appear (quoted or not).
    Scalar(String),
    Seq(Vec<Value>),
    Map(Vec<(String, Value)>),
}

fn one_of(rng: &mut Rng, xs: &[&str]) -> Value {
    Value::Scalar(rng.pick(xs).to_string())
}

/// Values a field of that name would take when valid.
fn valid(field: &str, i: usize, rng: &mut Rng) -> Value {
    let s = |t: &str| Value::Scalar(t.to_string());
    match field {
        "name" => Value::Scalar(format!("m{i}")),
        "token" => s("tok-1"),
        "bootstrap" => one_of(rng, &["static", "dns"]),
        "client_port" => Value::Scalar(format!("{}", 2379 + 10 * i as u32)),
        "peer_port" => Value::Scalar(format!("{}", 2380 + 10 * i as u32)),
        "data_dir" => one_of(rng, &["/var/lib/cairn", "/srv/cairn/{name}"]),
        "config_dir" => one_of(rng, &["/etc/cairn", "/etc/cairn/{name}"]),
        "transport" => s("ssh"),
        "enabled" | "prometheus" | "kubernetes" => one_of(rng, &["true", "false"]),
        "key_algorithm" => s("ecdsa-p256"),
        "ca_validity_days" => s("3650"),
        "validity_days" => s("825"),
        "renew_before_days" => s("30"),
        "ca" => one_of(rng, &["shared", "separate"]),
        "clients" => Value::Seq(vec![s("admin"), s("prometheus")]),
        "backend" => one_of(rng, &["nftables", "iptables", "firewalld", "none"]),
        "client_sources" => Value::Seq(vec![s("10.0.0.0/8"), s("\"fd00::/8\"")]),
        "file" => s("/var/log/cairn/cairn.log"),
        "namespace" => s("monitoring"),
        "max_clock_skew_seconds" | "health_timeout_seconds" => s("60"),
        // Valid alone and together: 200 is 5 heartbeats in the default 1000 ms election timeout.
        "heartbeat_interval_ms" => s("200"),
        "election_timeout_ms" => one_of(rng, &["1000", "10000"]),
        "address" => match rng.below(3) {
            0 => Value::Scalar(format!("10.1.0.{}", 10 + i)),
            1 => Value::Scalar(format!("\"fd00:1::{}\"", 10 + i)),
            _ => Value::Seq(vec![
                Value::Scalar(format!("10.1.0.{}", 10 + i)),
                Value::Scalar(format!("\"fd00:1::{}\"", 10 + i)),
            ]),
        },
        "hostname" => Value::Scalar(format!("m{i}.example.com")),
        "dns" => Value::Map(vec![("domain".into(), s("example.com"))]),
        "ssh" => Value::Map(vec![("user".into(), s("root")), ("port".into(), s("22"))]),
        "roles" => {
            let perm = Value::Map(vec![
                (
                    "access".into(),
                    one_of(rng, &["read", "write", "readwrite"]),
                ),
                ("prefix".into(), s("/metrics/")),
            ]);
            Value::Seq(vec![Value::Map(vec![
                ("name".into(), s("reader")),
                ("clients".into(), Value::Seq(vec![s("prometheus")])),
                ("permissions".into(), Value::Seq(vec![perm])),
            ])])
        }
        _ => s("x"),
    }
}

/// Scalars that break something: wrong kinds, edge numbers, unusable addresses, odd text.
const ODD: &[&str] = &[
    "",
    "~",
    "null",
    "true",
    "yes",
    "0",
    "1",
    "443",
    "65535",
    "65536",
    "-1",
    "1e3",
    "0x50",
    "abc",
    "10.0.0.300",
    "10.0.0",
    "::",
    "0.0.0.0",
    "127.0.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "\"::ffff:10.0.0.1\"",
    "\"fe80::1\"",
    "\"fd00::1\"",
    "a..b",
    "-x-",
    "example.com",
    "./data/{name}",
    "/var/lib/{nmae}",
    "{",
    "}",
    "\"{name\"",
    "relative/path",
    "local",
    "dns",
    "nftable",
    "rsa-2048",
    "separate",
    "admin",
    "Monitoring",
    "10.0.0.0/33",
    "\"quoted\"",
    "'single'",
    "\"é ü 中 🙂\"",
    "\"tab\\tin\"",
    "&anchor x",
    "*alias",
    "!!str x",
    "|",
    ">",
    "\"\"",
    "'",
    "\"",
    "[",
    "]",
    "{}",
    "[]",
    "- a",
    "a: b",
    "# comment",
];

fn odd(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 1 } else { 6 }) {
        0..=3 => Value::Scalar(rng.pick(ODD).to_string()),
        4 => Value::Seq((0..rng.below(3)).map(|_| odd(rng, depth + 1)).collect()),
        _ => Value::Map(
            (0..rng.below(3))
                .map(|_| (rng.pick(ODD).to_string(), odd(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// A field name: usually right, sometimes misspelt or foreign.
fn key(name: &str, rng: &mut Rng, bad: u64) -> String {
    if !rng.chance(bad) {
        return name.to_string();
    }
    match rng.below(3) {
        0 => format!("{name}s"),
        1 => name.chars().rev().collect(),
        _ => rng.pick(ODD).to_string(),
    }
}

/// A random cluster file; `bad` (percent) is how often a field is misnamed or given an odd value.
fn document(rng: &mut Rng, bad: u64) -> Value {
    let mut top = Vec::new();
    for (section, fields) in SECTIONS {
        if *section != "cluster" && !rng.chance(50) {
            continue;
        }
        let mut m = Vec::new();
        for f in fields.iter() {
            let must = *section == "cluster" && *f == "name";
            if !must && !rng.chance(30) {
                continue;
            }
            let v = if rng.chance(bad) {
                odd(rng, 1)
            } else {
                valid(f, 0, rng)
            };
            m.push((key(f, rng, bad / 3), v));
        }
        top.push((key(section, rng, bad / 4), Value::Map(m)));
    }
    let mut nodes = Vec::new();
    for i in 0..rng.below(6) {
        let mut m = Vec::new();
        for f in NODE_FIELDS {
            if !matches!(*f, "name" | "address") && !rng.chance(20) {
                continue;
            }
            let v = if rng.chance(bad) {
                odd(rng, 2)
            } else {
                valid(f, i, rng)
            };
            m.push((key(f, rng, bad / 3), v));
        }
        nodes.push(Value::Map(m));
    }
    if !rng.chance(bad / 4) {
        top.push(("nodes".into(), Value::Seq(nodes)));
    }
    Value::Map(top)
}

fn flow(v: &Value, out: &mut String) {
    match v {
        Value::Scalar(s) => out.push_str(s),
        Value::Seq(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(it, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, it)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                flow(it, out);
            }
            out.push('}');
        }
    }
}

fn block(v: &Value, indent: usize, rng: &mut Rng, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Map(entries) => {
            for (k, it) in entries {
                out.push_str(&format!("{pad}{k}:"));
                match it {
                    Value::Scalar(s) => out.push_str(&format!(" {s}\n")),
                    _ if rng.chance(40) => {
                        out.push(' ');
                        flow(it, out);
                        out.push('\n');
                    }
                    _ => {
                        out.push('\n');
                        block(it, indent + 2, rng, out);
                    }
                }
            }
        }
        Value::Seq(items) => {
            for it in items {
                out.push_str(&format!("{pad}- "));
                match it {
                    Value::Map(_) if rng.chance(50) => {
                        let mut inner = String::new();
                        block(it, indent + 2, rng, &mut inner);
                        out.push_str(inner.trim_start());
                    }
                    _ => {
                        flow(it, out);
                        out.push('\n');
                    }
                }
            }
        }
        Value::Scalar(s) => out.push_str(&format!("{pad}{s}\n")),
    }
}

/// Characters that mean something to YAML, and some that mean nothing.
const NOISE: &[&str] = &[
    ":", "-", " ", "  ", "\n", "\t", "[", "]", "{", "}", ",", "#", "&", "*", "!", "|", ">", "'",
    "\"", "%", "@", "`", "?", "---", "...", "\u{feff}", "é", "0", "9", "a", "\r\n",
];

/// 1-4 mutations of `text`: characters inserted, deleted or replaced; lines duplicated, dropped,
/// swapped or re-indented.
pub fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut s = text.to_string();
    for _ in 0..1 + rng.below(4) {
        let chars: Vec<char> = s.chars().collect();
        let at = rng.below(chars.len() + 1);
        let (head, tail): (String, String) =
            (chars[..at].iter().collect(), chars[at..].iter().collect());
        s = match rng.below(7) {
            0 => format!("{head}{}{tail}", rng.pick(NOISE)),
            1 => format!(
                "{head}{}",
                tail.chars().skip(1 + rng.below(5)).collect::<String>()
            ),
            2 => format!(
                "{head}{}{}",
                rng.pick(NOISE),
                tail.chars().skip(1).collect::<String>()
            ),
            _ => {
                let mut lines: Vec<String> = s.lines().map(String::from).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = rng.below(lines.len());
                let j = rng.below(lines.len());
                match rng.below(4) {
                    0 => {
                        let l = lines[i].clone();
                        lines.insert(j, l);
                    }
                    1 => {
                        lines.remove(i);
                    }
                    2 => lines.swap(i, j),
                    _ => {
                        let l = lines[i].trim_start().to_string();
                        lines[i] = format!("{}{l}", " ".repeat(rng.below(7)));
                    }
                }
                lines.join("\n") + "\n"
            }
        };
    }
    s
}

/// Case `n` of a run with `seed`: a generated file (valid-leaning or not), or a mutation of one of
/// `seeds` (real cluster files) or of a generated one.
pub fn case(seed: u64, n: u64, seeds: &[String]) -> String {
    let mut rng = Rng::new(seed ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let kind = rng.below(10);
    let gen = |rng: &mut Rng, bad: u64| {
        let mut out = String::new();
        block(&document(rng, bad), 0, rng, &mut out);
        out
    };
    match kind {
        0..=2 => gen(&mut rng, 0),
        3..=4 => gen(&mut rng, 15),
        5 => gen(&mut rng, 60),
        6..=7 if !seeds.is_empty() => {
            let s = rng.pick(seeds).clone();
            mutate(&s, &mut rng)
        }
        _ => {
            let s = gen(&mut rng, 5);
            mutate(&s, &mut rng)
        }
    }
}
