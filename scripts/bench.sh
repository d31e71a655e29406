#!/usr/bin/env bash
# Benchmark cairn against etcd 3.4 on this machine: builds release binaries, starts a 3-member TLS cluster
# of each (one after the other, same disk), runs the same workloads, writes docs/benchmark.md.
# Extra arguments go to cairn-bench, e.g.  scripts/bench.sh --duration 10s --check-perf s,m
# Needs /usr/bin/etcd and /usr/bin/etcdctl (Debian etcd-server, etcd-client; see scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cairn-node --bin cairn -p cairn-bench --bin cairn-bench
exec target/release/cairn-bench \
    --cairn target/release/cairn \
    --etcd /usr/bin/etcd \
    --etcdctl /usr/bin/etcdctl \
    --check-perf s \
    --out docs/benchmark.md \
    "$@"
