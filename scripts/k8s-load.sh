#!/usr/bin/env bash
# The long mode of the API-server-like workload (issue 22): release cairn vs etcd 3.5, same machine,
# one after the other. Extra arguments go to cairn-k8s-load (--seconds, --writers, --systems, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/etcd35.sh >/dev/null
cargo build --release -p cairn-node -p cairn-bench --bin cairn --bin cairn-k8s-load
exec target/release/cairn-k8s-load --cairn target/release/cairn "$@"
