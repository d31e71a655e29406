#!/usr/bin/env bash
# Brings up a local 3-member TLS cluster with `provision apply examples/local.yaml` (127.0.0.1, client ports
# 2379/22379/32379; members run as supervised processes, no ssh or systemd needed) and prints the etcdctl
# command line to talk to it.
#
#   scripts/quickstart.sh          install packages, build, provision apply (a second run changes nothing)
#   scripts/quickstart.sh stop     provision reset: stop the members and delete their data
#
# Rendered files go to ./out/local (state, logs and snapshots of apply in ./out/local/apply/), data and each
# member's log to ./data/<name>/ (cairn.log, cairn.pid).
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC=examples/local.yaml
OUT=out/local
TARGET="${CARGO_TARGET_DIR:-target}"
PROVISION="$TARGET/debug/provision"

case "${1:-start}" in
  stop)
    [ -x "$PROVISION" ] || { echo "nothing to stop: $PROVISION is not built"; exit 0; }
    exec "$PROVISION" reset "$SPEC" --yes
    ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

scripts/deps.sh quickstart
echo "==> cargo build (cairn, provision)"
cargo build --bins -p cairn-node -p provision

# provision finds cairn next to itself (target/debug/cairn).
"$PROVISION" apply "$SPEC"

CA="$OUT/pki/ca.crt"
[ -f "$OUT/pki/client-ca.crt" ] && CA="$OUT/pki/client-ca.crt"
ENDPOINTS=https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379
echo
echo "Talk to it with:"
echo
echo "  ETCDCTL_API=3 etcdctl --endpoints=$ENDPOINTS --cacert=$PWD/$CA --cert=$PWD/$OUT/pki/clients/admin.crt --key=$PWD/$OUT/pki/clients/admin.key member list -w table"
echo
echo "Status: $PROVISION status $SPEC   Logs: data/<name>/cairn.log   Stop: $0 stop"
