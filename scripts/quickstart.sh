#!/usr/bin/env bash
# Brings up a local 3-member TLS cluster (examples/local.yaml: 127.0.0.1, ports 2379/22379/32379) and prints
# the etcdctl command line to talk to it.
#
#   scripts/quickstart.sh          build, render certificates and env files, start 3 members, wait for health
#   scripts/quickstart.sh stop     kill the members this script started (PIDs in data/quickstart.pids)
#
# Data and logs go to ./data/<name> and ./data/logs/<name>.log, rendered files to ./out/local.
# CAIRN_BIN=/usr/bin/etcd runs the real etcd with the same flags instead of cairn (to compare behaviour).
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=examples/local.yaml
OUT=out/local
DATA=data
PIDS="$DATA/quickstart.pids"
LOGS="$DATA/logs"

die() { echo "error: $*" >&2; exit 1; }

# A recorded PID is only ours if the process still runs the binary we started (PIDs get reused).
ours() {
  local pid=$1 bin=$2
  [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1 | grep -qxF "$bin"
}

stop() {
  if [ ! -f "$PIDS" ]; then
    echo "nothing to stop: $PIDS does not exist"
    return 0
  fi
  local waiting=()
  while read -r name pid bin; do
    if ours "$pid" "$bin"; then
      kill "$pid" && waiting+=("$name:$pid:$bin")
    else
      echo "$name (pid $pid) is not running"
    fi
  done <"$PIDS"
  # SIGTERM lets a member finish its current write; give it 10 s before kill -9.
  local entry deadline=$(( $(date +%s) + 10 ))
  for entry in "${waiting[@]}"; do
    IFS=: read -r name pid bin <<<"$entry"
    while ours "$pid" "$bin" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if ours "$pid" "$bin"; then
      kill -9 "$pid" && echo "killed $name (pid $pid) with SIGKILL after 10 s"
    else
      echo "stopped $name (pid $pid)"
    fi
  done
  rm -f "$PIDS"
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

if [ -f "$PIDS" ]; then
  while read -r name pid bin; do
    ours "$pid" "$bin" && die "member $name is already running (pid $pid); run '$0 stop' first"
  done <"$PIDS"
  rm -f "$PIDS"
fi

scripts/deps.sh
echo "==> cargo build (cairn, provision)"
cargo build --bins -p cairn-node -p provision
TARGET="${CARGO_TARGET_DIR:-target}"
BIN="${CAIRN_BIN:-$PWD/$TARGET/debug/cairn}"
[ -x "$BIN" ] || die "$BIN is not an executable; run cargo build --workspace --bins"

echo "==> provision render $SPEC -o $OUT"
"$TARGET/debug/provision" render "$SPEC" -o "$OUT"

mkdir -p "$DATA" "$LOGS"
chmod 0700 "$DATA"

# Turns a rendered cairn.env (CAIRN_FOO_BAR=value, one per line) into etcd-style flags (--foo-bar=value),
# so the same file starts cairn or etcd; a boolean "true" becomes the bare flag, "false" is dropped.
env_to_flags() {
  local line key value flag
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [[ "$key" == CAIRN_* ]] || continue
    flag=$(echo "${key#CAIRN_}" | tr 'A-Z_' 'a-z-')
    case "$value" in
      true) echo "--$flag" ;;
      false) ;;
      *) echo "--$flag=$value" ;;
    esac
  done <"$1"
}

endpoints=()
started_at=""
for env in "$OUT"/nodes/*/cairn.env; do
  name=$(basename "$(dirname "$env")")
  mapfile -t flags < <(env_to_flags "$env")
  url=$(sed -n 's/^CAIRN_ADVERTISE_CLIENT_URLS=//p' "$env" | cut -d, -f1)
  [ -n "$url" ] || die "$env has no CAIRN_ADVERTISE_CLIENT_URLS"
  endpoints+=("$url")
  log="$LOGS/$name.log"
  echo "==> starting $name ($url), log $log"
  nohup "$BIN" "${flags[@]}" >>"$log" 2>&1 </dev/null &
  echo "$name $! $BIN" >>"$PIDS"
  started_at=$(date +%s.%N)
done
[ "${#endpoints[@]}" -gt 0 ] || die "no $OUT/nodes/*/cairn.env rendered from $SPEC"

ENDPOINTS=$(IFS=,; echo "${endpoints[*]}")
CA="$OUT/pki/ca.crt"
[ -f "$OUT/pki/client-ca.crt" ] && CA="$OUT/pki/client-ca.crt"
CTL=(etcdctl "--endpoints=$ENDPOINTS" "--cacert=$PWD/$CA" "--cert=$PWD/$OUT/pki/clients/admin.crt" "--key=$PWD/$OUT/pki/clients/admin.key")

echo "==> waiting for etcdctl endpoint health --cluster (up to 60 s)"
deadline=$(( $(date +%s) + 60 ))
# Healthy means every member listed and healthy: right after a first start `--cluster` can find members whose
# client URLs are not published yet and report nothing at all, with exit code 0.
all_healthy() {
  local out
  out=$(ETCDCTL_API=3 "${CTL[@]}" endpoint health --cluster 2>&1) || return 1
  [ "$(grep -c ' is healthy: ' <<<"$out")" -eq "${#endpoints[@]}" ]
}
until all_healthy; do
  while read -r name pid bin; do
    ours "$pid" "$bin" || { tail -n 30 "$LOGS/$name.log" >&2; stop; die "member $name exited; its log is $LOGS/$name.log"; }
  done <"$PIDS"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    for l in "$LOGS"/*.log; do echo "----- $l" >&2; tail -n 20 "$l" >&2; done
    stop
    die "cluster not healthy after 60 s; logs in $LOGS/"
  fi
  sleep 0.2
done
healthy_after=$(awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
ETCDCTL_API=3 "${CTL[@]}" endpoint health --cluster 2>&1
echo
echo "Cluster healthy ${healthy_after}s after the last member started. Talk to it with:"
echo
echo "  ETCDCTL_API=3 ${CTL[*]} member list -w table"
echo
echo "Logs: $LOGS/<name>.log   Data: $DATA/<name>   Stop: $0 stop"
