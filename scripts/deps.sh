#!/usr/bin/env bash
# Installs the Debian packages Cairn's build, tests and tools need. Idempotent; skips apt when all are present.
set -euo pipefail
PKGS=(
  protobuf-compiler libprotobuf-dev
  etcd-client etcd-server etcd-discovery
  bind9 bind9-utils bind9-dnsutils
  rsyslog nftables iptables openssl
  iproute2 netcat-openbsd curl
  systemd python3
  nix-bin ansible-core
  debootstrap openssh-client
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
