#!/usr/bin/env bash
# Builds the `cairn:latest` container image FROM scratch around a statically linked cairn binary and prints
# its size. The image carries a label with the hash of its inputs (binary, Dockerfile, this script); when the
# existing image's label matches, nothing is rebuilt, so CI and the container test can both call this.
# Usage: scripts/container-image.sh [--rebuild] [TAG]
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
rebuild=0
if [ "${1:-}" = "--rebuild" ]; then rebuild=1; shift; fi
tag="${1:-cairn:latest}"
target="x86_64-unknown-linux-gnu"
label="org.cairn.inputs-sha256"

echo "==> building a static cairn (glibc, crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p cairn-node --bin cairn --target "$target"
bin="target/$target/release/cairn"
# A dynamic binary lists its libraries ("libc.so.6 => ..."); a static(-pie) one has no such line.
if ldd "$bin" 2>&1 | grep -q "=>"; then
  echo "error: $bin is dynamically linked; the scratch image needs a static binary" >&2
  exit 1
fi

inputs=$(cat "$bin" packaging/container/Dockerfile "$self" | sha256sum | cut -d' ' -f1)
have=$(docker image inspect "$tag" --format "{{ index .Config.Labels \"$label\" }}" 2>/dev/null || true)
if [ "$rebuild" = 0 ] && [ "$have" = "$inputs" ]; then
  echo "==> $tag is up to date (same binary, Dockerfile and script: $label=$inputs)"
else
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp packaging/container/Dockerfile "$ctx/"
  root="$ctx/rootfs"
  mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/cairn" "$root/tmp" "$ctx/state"
  install -m 0755 "$bin" "$root/usr/local/bin/cairn"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  printf 'root:x:0:0:root:/:/sbin/nologin\ncairn:x:10001:10001:cairn:/var/lib/cairn:/sbin/nologin\n' > "$root/etc/passwd"
  printf 'root:x:0:\ncairn:x:10001:\n' > "$root/etc/group"
  chmod 0700 "$ctx/state"
  chmod 1777 "$root/tmp"

  echo "==> docker build -t $tag"
  docker build -q --label "$label=$inputs" -t "$tag" "$ctx" >/dev/null
fi
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "image $tag: $((size / 1024 / 1024)) MiB ($size bytes)"
