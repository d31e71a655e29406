#!/usr/bin/env bash
# Installs the Debian packages a Cairn task needs, in sets, so the quick start does not pull the test toolchain:
#   scripts/deps.sh quickstart   build and run a local cluster: protoc and the well-known .proto files it
#                                imports (etcd-client compiles etcd's .proto files; Debian ships
#                                google/protobuf/*.proto in libprotobuf-dev) and etcdctl (the command
#                                quickstart prints)
#   scripts/deps.sh test         quickstart's set plus every tool the system tests drive (scripts/test.sh)
#   scripts/deps.sh [all]        the same as test (CI)
#   scripts/deps.sh vm           what the opt-in VM appliance test adds (qemu, the image's boot loader tools)
#   scripts/deps.sh bench        test's set plus gnuplot, which draws the benchmark's put curve
# Idempotent; skips apt when all are present. Needs root or sudo only when something is missing.
set -euo pipefail
QUICKSTART=(protobuf-compiler libprotobuf-dev etcd-client)
TEST=(
  etcd-server etcd-discovery
  bind9 bind9-utils bind9-dnsutils
  rsyslog nftables iptables openssl
  iproute2 netcat-openbsd curl
  systemd python3 python3-venv
  nix-bin ansible-core
  debootstrap openssh-client
)
BENCH=(gnuplot-nox)
VM=(qemu-system-x86 qemu-utils extlinux fdisk e2fsprogs openssh-client curl)
case "${1:-all}" in
  quickstart) PKGS=("${QUICKSTART[@]}") ;;
  test | all) PKGS=("${QUICKSTART[@]}" "${TEST[@]}") ;;
  bench) PKGS=("${QUICKSTART[@]}" "${TEST[@]}" "${BENCH[@]}") ;;
  vm) PKGS=("${QUICKSTART[@]}" "${TEST[@]}" "${VM[@]}") ;;
  *) echo "usage: $0 [quickstart|test|all|vm|bench]" >&2; exit 2 ;;
esac
# The packages of the set dpkg does not list as installed (not-installed, removed, half-configured).
not_installed() {
  local p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(not_installed)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # --no-remove: apt may otherwise satisfy a conflict by removing a package of the set in silence (here
  # qemu-utils from bookworm-backports went when qemu-system-x86 came from bookworm); better to stop.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" >/dev/null
fi
# Check the whole set again: an install that removed or failed to configure a package must not pass.
mapfile -t absent < <(not_installed)
if [ "${#absent[@]}" -gt 0 ]; then
  echo "error: still not installed after apt-get: ${absent[*]} (try: apt-get install ${absent[*]})" >&2
  exit 1
fi
