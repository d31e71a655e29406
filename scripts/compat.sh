#!/usr/bin/env bash
# Runs the published test suites of four etcd client libraries, from their published packages, against cairn
# and against etcd 3.4.23 (Debian's /usr/bin/etcd), with the same commands, and prints every test whose
# result differs plus per-suite counts. Exit 1 when a test that passes on etcd does not pass on cairn.
#
#   scripts/compat.sh [--short] [--server cairn|etcd|both] [--suite NAME]... [--jobs N]
#
# Suites (NAME): etcd-client (the Rust crate 0.21.1's tests/client.rs), etcd-client-examples (its examples/,
# judged by exit code), python-etcd3 (0.12.0), aetcd (1.0.0), etcd3gw (2.7.0, etcd's JSON gateway).
# --short (CI, scripts/test.sh): every suite but the examples, hypothesis-driven tests with 10 examples
# instead of 100.
#
# Each (server, suite) pair runs in a network namespace of its own (`unshare -n`) with a fresh one-member
# server on 127.0.0.1:2379 and [::1]:2379, plaintext: the suites hard-code or default to localhost:2379
# and call the `etcdctl` on PATH with its default endpoint, and a private namespace gives each run that port
# without colliding with anything else on the machine. The suites' own setup is reproduced: the Rust crate's
# (its docker-compose.yml and Justfile) is `--auth-token-ttl 2` and a user root/rootpwd holding the root role.
#
# Downloads, venvs and the Rust build live in ${CAIRN_COMPAT_CACHE:-~/.cache/cairn/compat}; per-run logs
# and results in $CAIRN_COMPAT_OUT (default: a new directory under it, printed at the end). CAIRN_BIN=PATH
# runs that cairn binary instead of building target/debug/cairn.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CAIRN_COMPAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/compat}"

# The published packages and the pins their tests pass with on etcd 3.4.23 (measured 2026-12-02).
RUST_CRATE=etcd-client RUST_VERSION=0.21.1
# python-etcd3 0.12.0's generated code needs protobuf 3.x; tenacity and hypothesis are its own
# requirements/*.txt pins (newer tenacity changed the wait callback its Lock uses; newer hypothesis refuses
# its function-scoped fixtures). grpcio: the oldest line with wheels for this Python that runs its calls.
ETCD3_PKG="etcd3==0.12.0"
ETCD3_DEPS=("protobuf==3.20.3" "grpcio==1.62.3" "six==1.16.0" "tenacity==6.1.0" "hypothesis==4.56.3"
  "mock==5.1.0" "pytest==8.3.5")
# aetcd 1.0.0: its pyproject's test extras, exactly; grpcio/protobuf the versions its generated code was built with.
AETCD_PKG="aetcd==1.0.0"
AETCD_DEPS=("grpcio==1.75.1" "protobuf==6.32.1" "pytest==9.0.3" "pytest-asyncio==1.3.0" "pytest-mock==3.15.1")
# etcd3gw 2.7.0: requirements.txt + test-requirements.txt, pinned; run with pytest (its tox uses stestr, the
# same unittest classes).
ETCD3GW_PKG="etcd3gw==2.7.0"
ETCD3GW_DEPS=("pbr==6.1.1" "requests==2.32.3" "urllib3==2.2.3" "futurist==3.0.0" "oslotest==5.0.0"
  "testtools==2.7.2" "fixtures==4.1.0" "pytest==8.3.5")

ALL_SUITES=(etcd-client etcd-client-examples python-etcd3 aetcd etcd3gw)
SHORT_SUITES=(etcd-client python-etcd3 aetcd etcd3gw)

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

short=0 servers=(cairn etcd) suites=() jobs="${CAIRN_COMPAT_JOBS:-4}"
while [ $# -gt 0 ]; do
  case "$1" in
    --short) short=1 ;;
    --server) shift; case "${1:-}" in cairn | etcd) servers=("$1") ;; both) servers=(cairn etcd) ;; *) usage ;; esac ;;
    --suite) shift; [ -n "${1:-}" ] || usage; suites+=("$1") ;;
    --jobs) shift; [[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || usage; jobs="$1" ;;
    --run-one) shift; run_one_args=("$@"); break ;; # internal: one (server, suite) pair inside its namespace
    -h | --help) usage ;;
    *) usage ;;
  esac
  shift
done
if [ "${#suites[@]}" -eq 0 ]; then
  if [ "$short" -eq 1 ]; then suites=("${SHORT_SUITES[@]}"); else suites=("${ALL_SUITES[@]}"); fi
fi
for s in "${suites[@]}"; do
  [[ " ${ALL_SUITES[*]} " == *" $s "* ]] || { echo "unknown suite $s (one of: ${ALL_SUITES[*]})" >&2; exit 2; }
done

py() { "$cache/venv-$1/bin/python" "${@:2}"; }
rust_src="$cache/rust/$RUST_CRATE-$RUST_VERSION"
rust_env=(env CARGO_TARGET_DIR="$cache/rust-target" CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}")

# ---------------------------------------------------------------------------------------------------------
# Inside a namespace: start one server, run one suite, write <out>/<server>/<suite>.tsv (test, result).
# ---------------------------------------------------------------------------------------------------------
start_server() { # server, data dir, log, extra flags...: starts it, waits for /health; 1 if it never came up
  local server="$1" data="$2" log="$3"; shift 3
  local bin=/usr/bin/etcd
  [ "$server" = cairn ] && bin="$cairn_bin"
  rm -rf "$data"
  "$bin" --data-dir "$data" --listen-client-urls "http://127.0.0.1:2379,http://[::1]:2379" \
    --advertise-client-urls "http://127.0.0.1:2379" "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    curl -sf http://127.0.0.1:2379/health >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

stop_server() {
  [ -n "${server_pid:-}" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# The Rust crate's own setup (its docker-compose.yml and Justfile): token TTL 2 s, root/rootpwd with role root.
rust_setup() {
  etcdctl user add root --new-user-password=rootpwd >>"$1" 2>&1
  etcdctl user grant-role root root >>"$1" 2>&1
}

run_one() {
  local server="$1" suite="$2" out="$3"
  cairn_bin="$4"
  local dir="$out/$server/$suite"
  mkdir -p "$dir"
  ip link set lo up
  trap stop_server EXIT
  local flags=()
  case "$suite" in etcd-client*) flags+=(--auth-token-ttl 2) ;; esac
  export ETCDCTL_API=3
  export PYTHON_ETCD_HTTP_URL=http://127.0.0.1:2379 TEST_ETCD_HTTP_URL=http://127.0.0.1:2379
  export TOOZ_TEST_HTTP_URL=http://127.0.0.1:2379 TOOZ_TEST_ETCD_PORT=2379
  local pytest_opts=(-p no:cacheprovider -q -rfE --junitxml="$dir/junit.xml")
  if [ "$short" -eq 1 ]; then pytest_opts+=(-p compat_short); export PYTHONPATH="$repo/scripts/compat"; fi
  if [ "$suite" = etcd-client-examples ]; then
    # A fresh server for each example, as each assumes one (cluster.rs adds a member that never starts,
    # which leaves a one-member cluster without quorum for whatever runs after it).
    : >"$out/$server/$suite.tsv"
    for ex in "$rust_src"/examples/*.rs; do
      ex="$(basename "$ex" .rs)"
      local r=fail
      if start_server "$server" "$dir/data" "$dir/$ex.server.log" "${flags[@]}"; then
        rust_setup "$dir/setup.log"
        (cd "$rust_src" && timeout 120 "${rust_env[@]}" cargo run --offline --locked -q --example "$ex") \
          >"$dir/$ex.log" 2>&1 && r=pass
      fi
      stop_server
      printf 'examples/%s.rs\t%s\n' "$ex" "$r" >>"$out/$server/$suite.tsv"
    done
    return 0
  fi
  if ! start_server "$server" "$dir/data" "$dir/server.log" "${flags[@]}"; then
    echo "$server did not become healthy for $suite; its log: $dir/server.log" >&2
    printf '(server start)\tfail\n' >"$out/$server/$suite.tsv"
    return 0
  fi
  case "$suite" in
    etcd-client)
      rust_setup "$dir/setup.log"
      # One test at a time: the auth tests switch auth on for the whole server while they run.
      (cd "$rust_src" && timeout 900 "${rust_env[@]}" cargo test --offline --locked --test client \
        -- --test-threads 1) >"$dir/output.log" 2>&1 || true
      sed -nE 's/^test ([A-Za-z0-9_:]+) \.\.\. (ok|FAILED|ignored).*/\1\t\2/p' "$dir/output.log" |
        sed -e 's/\tok$/\tpass/' -e 's/\tFAILED$/\tfail/' -e 's/\tignored$/\tskip/' >"$out/$server/$suite.tsv"
      ;;
    python-etcd3)
      (cd "$cache/src/etcd3-0.12.0" && timeout 1200 "$cache/venv-etcd3/bin/python" -m pytest "${pytest_opts[@]}" tests) \
        >"$dir/output.log" 2>&1 || true
      ;;
    aetcd)
      # addopts= drops the sdist's --cov options (pytest-cov is a coverage tool, not part of the tests).
      (cd "$cache/src/aetcd-1.0.0" && timeout 1200 "$cache/venv-aetcd/bin/python" -m pytest "${pytest_opts[@]}" \
        -o addopts= tests) >"$dir/output.log" 2>&1 || true
      ;;
    etcd3gw)
      (cd "$cache/src/etcd3gw-2.7.0" && timeout 1200 "$cache/venv-etcd3gw/bin/python" -m pytest "${pytest_opts[@]}" \
        etcd3gw/tests) >"$dir/output.log" 2>&1 || true
      ;;
  esac
  if [ -f "$dir/junit.xml" ]; then
    python3 "$repo/scripts/compat/report.py" junit "$dir/junit.xml" >"$out/$server/$suite.tsv"
  elif [ ! -s "$out/$server/$suite.tsv" ]; then
    printf '(suite run)\tfail\n' >"$out/$server/$suite.tsv"
  fi
}

if [ -n "${run_one_args+x}" ]; then
  run_one "${run_one_args[@]}"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------
# Setup outside the namespaces (this part needs the registries): packages, venvs, the Rust build, cairn.
# ---------------------------------------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || { echo "compat.sh needs root (unshare -n for a private port 2379)" >&2; exit 2; }
for tool in etcd etcdctl curl unshare ip python3 cargo; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/deps.sh test)" >&2; exit 2; }
done
etcd_version="$(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p')"
mkdir -p "$cache/sdist" "$cache/src"
need() { for s in "${suites[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

setup_venv() { # name, package==version, deps...
  local name="$1" pkg="$2"; shift 2
  local stamp="$cache/venv-$name/.compat-$pkg-$(echo "$*" | md5sum | cut -c1-8)"
  [ -f "$stamp" ] && return 0
  echo "==> venv $name: $pkg with ${*}"
  rm -rf "$cache/venv-$name"
  python3 -m venv "$cache/venv-$name"
  py "$name" -m pip install -q --disable-pip-version-check "$@"
  # The sdist: its tests are what we run (the wheels carry none); the package itself from the same file.
  py "$name" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: "$pkg" -d "$cache/sdist"
  local file
  file="$(ls "$cache/sdist/${pkg%%==*}-${pkg##*==}.tar.gz")"
  tar xzf "$file" -C "$cache/src"
  PBR_VERSION="${pkg##*==}" py "$name" -m pip install -q --disable-pip-version-check --no-deps "$file"
  touch "$stamp"
}
need python-etcd3 && setup_venv etcd3 "$ETCD3_PKG" "${ETCD3_DEPS[@]}"
need aetcd && setup_venv aetcd "$AETCD_PKG" "${AETCD_DEPS[@]}"
need etcd3gw && setup_venv etcd3gw "$ETCD3GW_PKG" "${ETCD3GW_DEPS[@]}"

if need etcd-client || need etcd-client-examples; then
  if [ ! -f "$rust_src/Cargo.toml" ]; then
    crate="$(ls ~/.cargo/registry/cache/*/"$RUST_CRATE-$RUST_VERSION.crate" 2>/dev/null | head -1 || true)"
    if [ -z "$crate" ]; then
      # cargo is the registry's ordinary client: fetching the workspace's lock file brings the same crate
      # when the workspace uses it, else the crate's download endpoint.
      (cd "$repo" && cargo fetch --locked -q) || true
      crate="$(ls ~/.cargo/registry/cache/*/"$RUST_CRATE-$RUST_VERSION.crate" 2>/dev/null | head -1 || true)"
    fi
    if [ -z "$crate" ]; then
      crate="$cache/$RUST_CRATE-$RUST_VERSION.crate"
      curl -sSfL -o "$crate" "https://crates.io/api/v1/crates/$RUST_CRATE/$RUST_VERSION/download"
    fi
    mkdir -p "$cache/rust"
    tar xzf "$crate" -C "$cache/rust"
  fi
  echo "==> building $RUST_CRATE $RUST_VERSION's tests and examples (cached in $cache/rust-target)"
  (cd "$rust_src" && "${rust_env[@]}" cargo test --locked --no-run -q --test client)
  need etcd-client-examples && (cd "$rust_src" && "${rust_env[@]}" cargo build --locked -q --examples)
fi

cairn_bin="${CAIRN_BIN:-$repo/target/debug/cairn}"
if [ -z "${CAIRN_BIN:-}" ] && [[ " ${servers[*]} " == *" cairn "* ]]; then
  echo "==> cargo build --bin cairn"
  (cd "$repo" && cargo build --locked -q -p cairn-node --bin cairn)
fi

# ---------------------------------------------------------------------------------------------------------
# Run every (server, suite) pair, at most $jobs at once, each in its own network namespace.
# ---------------------------------------------------------------------------------------------------------
out="${CAIRN_COMPAT_OUT:-$cache/runs/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
start=$(date +%s)
echo "==> running ${suites[*]} against ${servers[*]} ($jobs at once; logs in $out)"
pids=()
for suite in "${suites[@]}"; do
  for server in "${servers[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    mkdir -p "$out/$server"
    unshare -n "$0" $([ "$short" -eq 1 ] && echo --short) --run-one "$server" "$suite" "$out" "$cairn_bin" \
      >>"$out/$server/$suite.runner.log" 2>&1 &
    pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p" || true; done
echo "==> suites ran in $(($(date +%s) - start)) s"

python3 "$repo/scripts/compat/report.py" compare "$out" "etcd $etcd_version" "${suites[@]}"
