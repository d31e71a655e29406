#!/usr/bin/env bash
# Runs every test Cairn has: unit tests, storage suite, and the system tests against real processes and tools.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
echo "==> cargo build (binaries used by the system tests)"
cargo build --workspace --bins --locked
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --lib --bins --tests -- --test-threads="${CAIRN_TEST_THREADS:-2}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# The published test suites of four etcd client libraries against cairn and etcd 3.4 (scripts/compat.sh;
# --short: the Rust crate's tests/client.rs and the three Python suites; the full run adds the examples).
echo "==> scripts/compat.sh --short"
CAIRN_BIN="$PWD/target/debug/cairn" scripts/compat.sh --short
compat_rc=$?
set -e
# One closing line over every test binary, so a reader of the log sees the whole count at once.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
[ "$rc" -ne 0 ] || rc=$compat_rc
exit "$rc"
