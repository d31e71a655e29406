//! Free loopback ports, chosen by the kernel so parallel tests never collide on a fixed number.

use anyhow::{Context, Result};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Returns `n` distinct free TCP ports on 127.0.0.1.
///
/// All listeners are held until every port is chosen, so the kernel cannot hand the same port out twice
/// within one call; they are released on return, leaving a small window in which another process could
/// take one (the member then fails to bind, and its log says so).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")
        })
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr().context("reading a bound port")?.port()))
        .collect()
}

/// Lowest port [`unused_ports`] hands out (well above the fixed ports services use, 2379/2380…).
const STABLE_LOW: u32 = 10_000;

/// Next candidate of [`unused_ports`], counted from [`STABLE_LOW`] (0 = not started yet).
static STABLE_NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port the kernel may give an outgoing connection (`ip_local_port_range`).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Returns `n` free TCP ports on 127.0.0.1 that stay free for a member started much later (a member
/// added with `member add` or restarted after a kill).
///
/// [`free_ports`] takes them from the kernel's ephemeral range, where any outgoing connection (etcdctl,
/// a peer channel) may be given the same number in the meantime. These come from below that range, so
/// only a listener can take them: each call continues where the last one in this process stopped (no two
/// tests of the test binary get the same port), starting at an offset from the process ID (other test
/// processes on the machine start elsewhere), and skips any port something already listens on.
pub fn unused_ports(n: usize) -> Result<Vec<u16>> {
    let high = ephemeral_low().min(u32::from(u16::MAX));
    if high <= STABLE_LOW + 1000 {
        return free_ports(n);
    }
    let span = high - STABLE_LOW;
    let _ = STABLE_NEXT.compare_exchange(
        0,
        1 + std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut ports = Vec::new();
    for _ in 0..span {
        if ports.len() == n {
            return Ok(ports);
        }
        let k = STABLE_NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(STABLE_LOW + k % span).context("port out of range")?;
        // Bindable now means nothing listens there; only a listener could take it later.
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    anyhow::bail!("no {n} free ports between {STABLE_LOW} and {high}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_in_one_call_are_distinct_and_bindable() {
        let ports = super::free_ports(6).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
        for p in ports {
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

    #[test]
    fn unused_ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let a = super::unused_ports(4).unwrap();
        let b = super::unused_ports(4).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8, "two calls never share a port: {a:?} {b:?}");
        for p in all {
            assert!(u32::from(p) < super::ephemeral_low(), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
