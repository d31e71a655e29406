//! `--auto-compaction-mode` / `--auto-compaction-retention` read into the history the leader keeps
//! (the compaction schedule itself is mvcc's).

use std::time::Duration;

/// How much history the leader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// No automatic compaction (retention "0", etcd's default).
    Off,
    /// Keep about this much time of history (`periodic` mode).
    Period(Duration),
    /// Keep the last N revisions (`revision` mode).
    Revisions(i64),
}

impl Retention {
    /// Read `--auto-compaction-retention` as etcd does: in periodic mode a whole number means hours and
    /// anything else is a Go duration ("30m", "1h30m", "1.5h"); in revision mode a whole number of
    /// revisions. "0" turns compaction off. The error text says what is accepted.
    pub fn parse(revision_mode: bool, text: &str) -> Result<Retention, String> {
        let text = text.trim();
        if let Ok(n) = text.parse::<i64>() {
            return match n {
                0 => Ok(Retention::Off),
                n if n < 0 => Err(format!("{text:?} is negative")),
                n if revision_mode => Ok(Retention::Revisions(n)),
                n => Ok(Retention::Period(Duration::from_secs(n as u64 * 3600))),
            };
        }
        if revision_mode {
            return Err(format!(
                "{text:?} is not a whole number of revisions (revision mode keeps the last N revisions)"
            ));
        }
        match parse_go_duration(text) {
            Some(d) if d.is_zero() => Ok(Retention::Off),
            Some(d) => Ok(Retention::Period(d)),
            None => Err(format!(
                "{text:?} is neither a number of hours nor a duration such as 30m, 1h30m or 1.5h"
            )),
        }
    }
}

/// A duration flag's value as Go's flag package reads it (`time.ParseDuration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagDuration {
    /// A positive duration.
    Positive(Duration),
    /// "0", "-5s": valid, and etcd then keeps its default.
    ZeroOrNegative,
}

/// Parse a Go duration flag value ("10m0s", "1.5h", "0", "-1s"), for clap.
pub fn parse_flag_duration(text: &str) -> Result<FlagDuration, String> {
    let bad = || format!("invalid duration {text:?}: a Go duration such as 10m, 1m30s or 500ms");
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    // Go accepts a bare "0" (with or without sign) and nothing else unitless.
    if rest == "0" {
        return Ok(FlagDuration::ZeroOrNegative);
    }
    match parse_go_duration(rest) {
        Some(d) if negative || d.is_zero() => Ok(FlagDuration::ZeroOrNegative),
        Some(d) => Ok(FlagDuration::Positive(d)),
        None => Err(bad()),
    }
}

/// A Go `time.ParseDuration` string: one or more decimal numbers each with a unit (ns, us, µs, ms, s, m, h).
fn parse_go_duration(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_flags_are_read_like_go() {
        let secs = |s| FlagDuration::Positive(Duration::from_secs(s));
        assert_eq!(parse_flag_duration("10m0s"), Ok(secs(600)));
        assert_eq!(parse_flag_duration("1h"), Ok(secs(3600)));
        assert_eq!(
            parse_flag_duration("500ms"),
            Ok(FlagDuration::Positive(Duration::from_millis(500)))
        );
        assert_eq!(parse_flag_duration("0"), Ok(FlagDuration::ZeroOrNegative));
        assert_eq!(parse_flag_duration("-3s"), Ok(FlagDuration::ZeroOrNegative));
        for bad in ["", "10", "5 s", "1d", "m", "-"] {
            assert!(parse_flag_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn retention_is_read_like_etcd() {
        let h = |n: u64| Retention::Period(Duration::from_secs(n * 3600));
        assert_eq!(Retention::parse(false, "0"), Ok(Retention::Off));
        assert_eq!(Retention::parse(false, "1"), Ok(h(1)));
        assert_eq!(Retention::parse(false, "72"), Ok(h(72)));
        assert_eq!(
            Retention::parse(false, "30m"),
            Ok(Retention::Period(Duration::from_secs(1800)))
        );
        assert_eq!(
            Retention::parse(false, "1h30m"),
            Ok(Retention::Period(Duration::from_secs(5400)))
        );
        assert_eq!(
            Retention::parse(false, "1.5h"),
            Ok(Retention::Period(Duration::from_secs(5400)))
        );
        assert_eq!(
            Retention::parse(false, "500ms"),
            Ok(Retention::Period(Duration::from_millis(500)))
        );
        assert_eq!(Retention::parse(false, "0s"), Ok(Retention::Off));
        assert_eq!(
            Retention::parse(true, "1000"),
            Ok(Retention::Revisions(1000))
        );
        assert_eq!(Retention::parse(true, "0"), Ok(Retention::Off));
        for bad in ["1d", "abc", "", "h", "1h3", "-1"] {
            assert!(Retention::parse(false, bad).is_err(), "{bad:?} accepted");
        }
        assert!(Retention::parse(true, "1h").is_err());
        assert!(Retention::parse(true, "-5").is_err());
    }
}
