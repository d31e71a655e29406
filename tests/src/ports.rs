//! Free loopback ports, chosen by the kernel so parallel tests never collide on a fixed number.

use anyhow::{Context, Result};
use std::net::TcpListener;

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
}
