#!/usr/bin/env bash
# Runs every test Cairn has: unit tests, storage suite, and the system tests against real processes and tools.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "==> cargo build (binaries used by the system tests)"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${CAIRN_TEST_THREADS:-2}"
