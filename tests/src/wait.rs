//! Waiting on conditions with deadlines instead of fixed sleeps.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Polls `probe` every `every` until it returns `Some`, or fails after `timeout` naming `what` and the
/// last reason the probe gave.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> std::result::Result<T, String>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(last) => {
                if Instant::now() >= deadline {
                    bail!(
                        "timed out after {timeout:?} waiting for {what}; last observation: {last}"
                    );
                }
            }
        }
        std::thread::sleep(every);
    }
}
