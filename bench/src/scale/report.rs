//! The scale suite's Markdown: one table, a row per figure, a column per system, cairn ÷ each other.

use std::fmt::Write;

/// Which way a figure is better, for the verdict column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Better {
    Lower,
    Higher,
}

/// One figure of one system.
pub struct Fact {
    pub what: String,
    pub value: f64,
    pub better: Better,
}

impl Fact {
    /// A figure where less is better (time, memory, latency).
    pub fn lower(what: String, value: f64) -> Fact {
        Fact {
            what,
            value,
            better: Better::Lower,
        }
    }
    /// A figure where more is better (throughput).
    pub fn higher(what: String, value: f64) -> Fact {
        Fact {
            what,
            value,
            better: Better::Higher,
        }
    }
}

/// Everything the suite saw of one system.
pub struct ScaleRun {
    pub system: String,
    pub facts: Vec<Fact>,
    pub notes: Vec<String>,
    pub failure: Option<String>,
}

impl ScaleRun {
    pub fn new(system: String) -> ScaleRun {
        ScaleRun {
            system,
            facts: Vec::new(),
            notes: Vec::new(),
            failure: None,
        }
    }
    pub fn push(&mut self, f: Fact) {
        eprintln!("    {}: {:.2}", f.what, f.value);
        self.facts.push(f);
    }
    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }
    fn get(&self, what: &str) -> Option<&Fact> {
        self.facts.iter().find(|f| f.what == what)
    }
}

/// Header facts.
pub struct Context {
    pub date: String,
    pub command: String,
    pub keys: u64,
    pub load: (String, String),
}

/// The report. cairn's column is compared with every other system's.
pub fn render(ctx: &Context, runs: &[ScaleRun]) -> String {
    let mut s = String::new();
    let names: Vec<&str> = runs.iter().map(|r| r.system.as_str()).collect();
    let _ = writeln!(s, "# Scale suite: {}\n", names.join(" vs "));
    let _ = writeln!(s, "- date: {}", ctx.date);
    let _ = writeln!(s, "- command: `{}`", ctx.command);
    let _ = writeln!(
        s,
        "- dataset: {} keys × 1 KiB, then every other key overwritten and every tenth deleted ({:.0} MiB of values written)",
        ctx.keys,
        ctx.keys as f64 * 1.6 * 1024.0 / 1048576.0
    );
    let _ = writeln!(
        s,
        "- load average (1/5/15 min) at the start: {}; at the end: {}",
        ctx.load.0, ctx.load.1
    );
    let _ = writeln!(s, "- 3 members per system, mutual TLS, loopback, one disk; steps interleaved between the systems\n");
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for r in runs {
        let _ = write!(head, " {} |", r.system);
        rule.push_str("---:|");
    }
    let cairn = runs.iter().find(|r| r.system == "cairn");
    let others: Vec<&ScaleRun> = runs.iter().filter(|r| r.system != "cairn").collect();
    if cairn.is_some() {
        for o in &others {
            let _ = write!(head, " cairn ÷ {} |", o.system);
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(s, "{head}\n{rule}");
    let mut seen: Vec<&str> = Vec::new();
    for f in runs.iter().flat_map(|r| r.facts.iter()) {
        if seen.contains(&f.what.as_str()) {
            continue;
        }
        seen.push(&f.what);
        let mut line = format!("| {} |", f.what);
        for r in runs {
            match r.get(&f.what) {
                Some(x) => {
                    let _ = write!(line, " {} |", fmt(x.value));
                }
                None => line.push_str(" – |"),
            }
        }
        if let Some(c) = cairn.and_then(|c| c.get(&f.what)) {
            for o in &others {
                match o.get(&f.what) {
                    Some(x) if x.value > 0.0 => {
                        let ratio = c.value / x.value;
                        let good = match f.better {
                            Better::Lower => ratio <= 1.0,
                            Better::Higher => ratio >= 1.0,
                        };
                        let _ =
                            write!(line, " {ratio:.2}×{} |", if good { "" } else { " (worse)" });
                    }
                    _ => line.push_str(" – |"),
                }
            }
        }
        let _ = writeln!(s, "{line}");
    }
    for r in runs {
        for n in &r.notes {
            let _ = writeln!(s, "\n- {}: {n}", r.system);
        }
        if let Some(f) = &r.failure {
            let _ = writeln!(s, "\n- {}: **stopped early**: {f}", r.system);
        }
    }
    s
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cairn_is_compared_with_each_other_system_in_the_right_direction() {
        let mut e = ScaleRun::new("etcd 3.5.16".into());
        e.facts = vec![
            Fact::lower("restart: s".into(), 2.0),
            Fact::higher("load: ops/s".into(), 100.0),
        ];
        let mut c = ScaleRun::new("cairn".into());
        c.facts = vec![
            Fact::lower("restart: s".into(), 4.0),
            Fact::higher("load: ops/s".into(), 300.0),
        ];
        let ctx = Context {
            date: "d".into(),
            command: "c".into(),
            keys: 10,
            load: ("1".into(), "2".into()),
        };
        let text = render(&ctx, &[e, c]);
        assert!(
            text.contains("| restart: s | 2.00 | 4.00 | 2.00× (worse) |"),
            "{text}"
        );
        assert!(
            text.contains("| load: ops/s | 100 | 300 | 3.00× |"),
            "{text}"
        );
    }
}
