#!/usr/bin/env bash
# Benchmark cairn against etcd 3.4 and etcd 3.5 on this machine: builds release binaries, fetches etcd 3.5
# (scripts/etcd35.sh), starts a 3-member TLS cluster of each, runs the same workloads on each in turn,
# writes docs/benchmark.md and the put curve docs/benchmark-put.png (gnuplot).
# Extra arguments go to cairn-bench, e.g.  scripts/bench.sh --duration 10s --check-perf s,m
#   scripts/bench.sh --scale [--scale-keys N]   the scale suite instead (cairn vs etcd 3.5, ~1 GiB dataset
#                                                by default; its own budget, not in CI) → docs/benchmark-scale.md
#   scripts/bench.sh --scale --scale-steps big-values,learner   the load, then only the steps named
# Needs /usr/bin/etcd and /usr/bin/etcdctl (Debian etcd-server, etcd-client) and gnuplot
# (scripts/deps.sh bench). CAIRN_BENCH_NO_BUILD=1 uses the binaries already in target/release.
set -euo pipefail
cd "$(dirname "$0")/.."
etcd35="$(scripts/etcd35.sh)/etcd"
if [ -z "${CAIRN_BENCH_NO_BUILD:-}" ]; then
  cargo build --release -p cairn-node --bin cairn -p cairn-bench --bin cairn-bench
fi
common=(--cairn target/release/cairn --etcd /usr/bin/etcd --etcd35 "$etcd35" --etcdctl /usr/bin/etcdctl)
for a in "$@"; do
  if [ "$a" = "--scale" ]; then
    exec target/release/cairn-bench "${common[@]}" --systems etcd35,cairn --duration 10s \
      --out docs/benchmark-scale.md "$@"
  fi
done
exec target/release/cairn-bench "${common[@]}" \
    --check-perf s \
    --out docs/benchmark.md \
    --plot docs/benchmark-put.png \
    "$@"
