#!/usr/bin/env bash
# Fault injection: runs 3-member clusters through seeded fault schedules (kill -9, SIGSTOP, partitions,
# member replacement, full disks, WAL corruption) while clients and watchers record histories, then checks
# them (linearizability per key, etcd's revision model, watch guarantees, convergence) and prints the figures.
#
#   scripts/chaos.sh [--runs N] [--seed S] [--server cairn|etcd] [--short] [other `cairn-chaos run` flags]
#
# --server etcd runs /usr/bin/etcd (3.4) through the same harness as the control. A failing run keeps its
# directory under target/chaos/ (history.json, progress.txt, member logs); `target/debug/cairn-chaos check DIR`
# checks it again. Needs root (network namespaces, nftables, tmpfs mounts): runs itself through sudo if not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p cairn-node --bin cairn -p cairn-chaos --bin cairn-chaos
if [ "$(id -u)" -ne 0 ]; then
    exec sudo target/debug/cairn-chaos run "$@"
fi
exec target/debug/cairn-chaos run "$@"
