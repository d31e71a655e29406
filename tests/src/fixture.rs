//! The starting point most system tests share: a 3-member cluster of the flavour under test, and
//! unwrapping that shows the whole error chain.

use anyhow::Result;

use crate::cluster::{Cluster, Flavor};

/// A started, healthy 3-member TLS cluster of `CAIRN_TEST_FLAVOR`'s server (panics saying why not).
pub fn three_members() -> Cluster {
    let flavor = Flavor::from_env().expect("CAIRN_TEST_FLAVOR");
    match Cluster::start(flavor, 3) {
        Ok(c) => c,
        Err(e) => panic!("starting a 3-member {flavor:?} cluster: {e:#}"),
    }
}

/// Unwraps with the whole error chain (etcdctl's outputs included) in the panic message.
pub fn must<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}
