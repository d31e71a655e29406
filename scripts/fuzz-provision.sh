#!/usr/bin/env bash
# The cluster-file property test at full size: random and mutated cluster files through provision's
# reader and templates (no panic, every refusal located), a sample through the CLI and the validators.
# CI runs it once with 100 000 cases (scripts/test.sh); this runs CASES (default 300 000) per seed.
#   scripts/fuzz-provision.sh [SEED...]      default seeds: 19 20 21
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${CASES:-300000}"
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(19 20 21)
cargo build --workspace --bins --locked
for seed in "${seeds[@]}"; do
    echo "==> seed $seed, $cases cases"
    CAIRN_SPEC_FUZZ_CASES="$cases" CAIRN_SPEC_FUZZ_SEED="$seed" \
        cargo test -p cairn-tests --test system --locked render_fuzz -- --nocapture
done
