//! A client that keeps writing while a test changes the cluster: sequential keys through the real
//! etcdctl, each put recorded only when etcdctl acknowledged it (exit 0, `OK`), so the test can demand
//! every acknowledged write back afterwards.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::base64::decode_str;
use crate::etcdctl::Etcdctl;

/// A background writer of `PREFIX000001`, `PREFIX000002`, … (value = key).
pub struct SeqWriter {
    ctl: Arc<Mutex<Etcdctl>>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    handle: Option<JoinHandle<Vec<String>>>,
}

impl SeqWriter {
    /// Starts writing through `ctl` until [`SeqWriter::finish`] (or drop).
    pub fn start(ctl: Etcdctl, prefix: &str) -> SeqWriter {
        let ctl = Arc::new(Mutex::new(ctl));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let (c, s, a, prefix) = (ctl.clone(), stop.clone(), acked.clone(), prefix.to_string());
        let handle = std::thread::spawn(move || {
            let mut keys = Vec::new();
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("{prefix}{n:06}");
                let ctl = match c.lock() {
                    Ok(g) => g.clone(),
                    Err(_) => break,
                };
                if let Ok(out) = ctl.run(&["--command-timeout=3s", "put", &key, &key]) {
                    if out.success() && out.stdout == "OK\n" {
                        keys.push(key);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            keys
        });
        SeqWriter {
            ctl,
            stop,
            acked,
            handle: Some(handle),
        }
    }

    /// Points the following puts at other endpoints (members added or about to be removed).
    pub fn set_endpoints(&self, endpoints: &str) {
        if let Ok(mut g) = self.ctl.lock() {
            *g = g.with_endpoints(endpoints);
        }
    }

    /// How many puts have been acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops and returns every acknowledged key, in order.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for SeqWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The keys of `acked` that a linearizable `get --prefix` through `ctl` does not return with their
/// value (an empty list means nothing acknowledged was lost).
pub fn missing(ctl: &Etcdctl, prefix: &str, acked: &[String]) -> Result<Vec<String>> {
    let got = ctl.json(&["get", "--prefix", prefix, "-w", "json"])?;
    let mut stored = BTreeSet::new();
    for kv in got["kvs"].as_array().cloned().unwrap_or_default() {
        let key = decode_str(kv["key"].as_str().unwrap_or_default()).context("key")?;
        let value = decode_str(kv["value"].as_str().unwrap_or_default()).context("value")?;
        if key == value {
            stored.insert(key);
        }
    }
    Ok(acked
        .iter()
        .filter(|k| !stored.contains(*k))
        .cloned()
        .collect())
}
