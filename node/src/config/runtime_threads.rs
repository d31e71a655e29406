//! How many worker threads the member's async runtime gets (`--runtime-threads`).
//!
//! Why not always one per CPU (tokio's default): members that share a host each start that many, and
//! tokio wakes idle siblings to steal work; with three members on two CPUs (a local cluster, the
//! benchmark, the tests) six workers plus three WAL writers took turns on two CPUs and every put paid
//! for the extra wake-ups. Measured on a 2-core machine in four runs (docs/benchmark.md, "Sharing a
//! host's CPUs"): one worker per member did 0.98–1.12× the puts and gets of two at 1 to 1024 clients
//! (all but one point above 1) with 4–17 % less CPU per operation, where etcd 3.5 given one thread
//! (`GOMAXPROCS=1`) lost 6–14 % from 16 clients up.
//! So the CPUs are shared out among the members of `--initial-cluster` that run on this host; a
//! member alone on its host (production) keeps one worker per CPU.

use std::net::IpAddr;

use super::{parse_url, Config};

/// The runtime's size and the reason, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeThreads {
    /// Worker threads of the async runtime (at least 1).
    pub workers: usize,
    /// Why that many, in words for the log.
    pub why: String,
}

impl Config {
    /// Worker threads for the async runtime: `--runtime-threads` when given, else the CPUs this
    /// process may use divided among the members of `--initial-cluster` on this host.
    pub fn runtime_threads(&self) -> RuntimeThreads {
        if let Some(n) = self.runtime_threads {
            return RuntimeThreads {
                workers: n.max(1),
                why: "--runtime-threads".into(),
            };
        }
        // Honours CPU affinity and cgroup quotas (a container limited to 2 CPUs sees 2).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let here = self.members_on_this_host();
        let workers = (cpus / here).max(1);
        let why = if here > 1 {
            format!(
                "{cpus} CPUs available, shared by the {here} members of --initial-cluster on this \
                 host; --runtime-threads sets it"
            )
        } else {
            format!("one per available CPU ({cpus}); --runtime-threads sets it")
        };
        RuntimeThreads { workers, why }
    }

    /// Members of the initial cluster (this one included) whose peer URLs name this member's host:
    /// the same host name or address, or loopback when this member's is loopback. At least 1.
    fn members_on_this_host(&self) -> usize {
        let host = |url: &str| parse_url("initial-cluster", url).ok().map(|p| p.host);
        let mine: Vec<String> = self
            .initial_advertise_peer_urls
            .iter()
            .filter_map(|u| host(u))
            .collect();
        let on_this_host =
            |url: &String| host(url).is_some_and(|h| mine.iter().any(|m| same_host(m, &h)));
        // Without --initial-cluster (SRV or discovery bootstrap) the list is this member alone.
        let Ok(members) = self.initial_members() else {
            return 1;
        };
        let here = members
            .iter()
            .filter(|(_, urls)| urls.iter().any(on_this_host))
            .count();
        here.max(1)
    }
}

/// Whether two URL hosts are the same machine as far as the flags tell: equal, or both loopback.
fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (is_loopback(a) && is_loopback(b))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cfg(args: &[&str]) -> Config {
        let mut all = vec!["cairn"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("flags parse")
    }

    #[test]
    fn members_sharing_loopback_or_an_address_are_counted_once_each() {
        let local = cfg(&[
            "--name=a",
            "--initial-advertise-peer-urls=https://127.0.0.1:2380",
            "--initial-cluster=a=https://127.0.0.1:2380,b=https://localhost:12380,c=https://127.0.0.2:22380",
        ]);
        assert_eq!(local.members_on_this_host(), 3);
        let spread = cfg(&[
            "--name=a",
            "--initial-advertise-peer-urls=https://10.0.1.10:2380",
            "--initial-cluster=a=https://10.0.1.10:2380,a=https://10.0.1.10:2381,b=https://10.0.1.11:2380,c=https://10.0.1.12:2380",
        ]);
        assert_eq!(spread.members_on_this_host(), 1);
        let two_here = cfg(&[
            "--name=a",
            "--initial-advertise-peer-urls=https://10.0.1.10:2380",
            "--initial-cluster=a=https://10.0.1.10:2380,b=https://10.0.1.10:3380,c=https://10.0.1.12:2380",
        ]);
        assert_eq!(two_here.members_on_this_host(), 2);
        // SRV or discovery bootstrap: the members are not known before the start.
        let srv = cfg(&["--name=a", "--discovery-srv=example.com"]);
        assert_eq!(srv.members_on_this_host(), 1);
    }

    #[test]
    fn the_flag_wins_and_the_share_is_never_zero() {
        let set = cfg(&["--runtime-threads=3"]);
        assert_eq!(set.runtime_threads().workers, 3);
        let crowded = cfg(&[
            "--name=m0",
            "--initial-advertise-peer-urls=https://127.0.0.1:2380",
            &format!(
                "--initial-cluster={}",
                (0..64)
                    .map(|i| format!("m{i}=https://127.0.0.1:{}", 2380 + i))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ]);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(crowded.runtime_threads().workers, (cpus / 64).max(1));
    }
}
