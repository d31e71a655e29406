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

#[cfg(test)]
mod tests {
    use super::wait_for;
    use std::time::Duration;

    #[test]
    fn returns_the_first_success() {
        let mut n = 0;
        let got = wait_for(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                if n == 3 {
                    Ok(n)
                } else {
                    Err(format!("n={n}"))
                }
            },
        );
        assert_eq!(got.unwrap(), 3);
    }

    #[test]
    fn times_out_naming_the_condition_and_last_observation() {
        let err = wait_for::<()>(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Err("still no".into()),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("the impossible") && msg.contains("still no"),
            "{msg}"
        );
    }
}
