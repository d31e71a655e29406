#!/usr/bin/env bash
# The long mode of the API-server-like workload (issue 22): release cairn vs etcd 3.5, same machine,
# one after the other. Extra arguments go to cairn-k8s-load (--seconds, --writers, --systems, ...).
#
#   scripts/k8s-load.sh [cairn-k8s-load flags]           # no faults: figures per operation kind
#   scripts/k8s-load.sh --with-faults [cairn-chaos k8s flags]  # the same workload through faults (leader
#       kill -9, partition of the member the watches are on, compaction during lists), cairn then
#       etcd 3.5 with the same seed (--seed S, default from the clock; --faults N, --server to run one)
#
# --with-faults needs root (network namespaces, nftables): runs cairn-chaos through sudo if not.
set -euo pipefail
cd "$(dirname "$0")/.."
etcd35="$(scripts/etcd35.sh)/etcd"
if [ "${1:-}" != "--with-faults" ]; then
    cargo build --release -p cairn-node -p cairn-bench --bin cairn --bin cairn-k8s-load
    exec target/release/cairn-k8s-load --cairn target/release/cairn --etcd "$etcd35" "$@"
fi
shift
cargo build --release -p cairn-node -p cairn-chaos --bin cairn --bin cairn-chaos
sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
seed="$(date +%s)"
servers=(cairn etcd)
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seed) seed="$2"; shift 2 ;;
        --server) servers=("$2"); shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
status=0
for server in "${servers[@]}"; do
    bin=target/release/cairn
    if [ "$server" = etcd ]; then bin="$etcd35"; fi
    "${sudo[@]}" target/release/cairn-chaos k8s --seed "$seed" --server "$server" --binary "$bin" \
        ${args[@]+"${args[@]}"} || status=1
done
exit "$status"
