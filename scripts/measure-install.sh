#!/usr/bin/env bash
# Times what the two commands of the README install, on a fresh Debian 12 container that has only the Rust
# toolchain (the README's starting point): `scripts/deps.sh quickstart` (what quickstart.sh installs), then
# `scripts/deps.sh test` on top (the rest, what test.sh adds), and optionally all of quickstart.sh (install,
# build from an empty target dir, `provision apply` of examples/local.yaml) with an etcdctl health check.
#
# Usage: scripts/measure-install.sh [--quickstart]     (root; docker, debootstrap)
# The container's root filesystem comes from debootstrap (like scripts/host-image.sh: no registry is
# reachable) with only gcc and libc6-dev added, the C linker Rust needs; the toolchain is the host's
# (`rustup which rustc`'s directory, mounted read-only). The source is `git archive HEAD`, a clean checkout.
# The host's CA bundle is given to cargo (CARGO_HTTP_CAINFO): where this machine reaches crates.io through a
# TLS-inspecting proxy, a fresh container does not trust that proxy otherwise.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tag=cairn-fresh:bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
quickstart=0
[ "${1:-}" = "--quickstart" ] && quickstart=1

if ! docker image inspect "$tag" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "error: debootstrap missing: run scripts/deps.sh" >&2; exit 1; }
  work=$(mktemp -d /var/tmp/cairn-fresh.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  echo "==> debootstrap bookworm minbase + gcc, libc6-dev, ca-certificates ($mirror)"
  debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev bookworm "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  # Removed here: the container's EXIT trap below replaces this one.
  rm -rf "$work"
  trap - EXIT
fi

toolchain="$(dirname "$(dirname "$(rustup which rustc)")")"
name="cairn-fresh-$$"
docker run -d --name "$name" -v "$toolchain:/opt/rust:ro" -e PATH=/opt/rust/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/host-ca.crt:ro -e CARGO_HTTP_CAINFO=/etc/host-ca.crt \
  "$tag" sleep infinity >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1' EXIT
git -C "$repo" archive --prefix=cairn/ HEAD | docker exec -i "$name" tar -x -C /root

# Runs a step in the container and prints its wall time and the Debian packages it added (count and their
# installed size; `df` would count the host's disk, which the container's overlay shares).
step() {
  local title="$1"; shift
  local before t0 t1 after rc=0
  local count='dpkg-query -W -f="\${Installed-Size}\n" | awk "{ n++; k += \$1 } END { print n, k }"'
  before=$(docker exec "$name" sh -c "$count")
  t0=$(date +%s)
  docker exec -w /root/cairn "$name" bash -c "$*" 2>&1 | sed 's/^/    /' || rc=${PIPESTATUS[0]}
  t1=$(date +%s)
  after=$(docker exec "$name" sh -c "$count")
  read -r p0 d0 <<<"$before"
  read -r p1 d1 <<<"$after"
  [ "$rc" = 0 ] || title="$title FAILED (exit $rc)"
  echo "RESULT $title: $((t1 - t0)) s, +$((p1 - p0)) Debian packages, $(((d1 - d0) / 1024)) MiB installed"
}

echo "==> fresh container $name: $(docker exec "$name" sh -c 'cargo --version; dpkg-query -W | wc -l' | paste -sd' ') packages"
step "deps.sh quickstart (quickstart.sh's install)" scripts/deps.sh quickstart
if [ "$quickstart" = 1 ]; then
  step "quickstart.sh (install done: build from an empty target dir + provision apply)" scripts/quickstart.sh
  step "etcdctl endpoint health against the quickstart cluster" \
    'ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379,https://127.0.0.1:22379,https://127.0.0.1:32379 --cacert=out/local/pki/ca.crt --cert=out/local/pki/clients/admin.crt --key=out/local/pki/clients/admin.key endpoint health'
fi
step "deps.sh test (what test.sh installs on top)" scripts/deps.sh test
