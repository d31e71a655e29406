#!/usr/bin/env bash
# Builds the `cairn:latest` container image FROM scratch around a statically linked cairn binary and prints
# its size. Usage: scripts/container-image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-cairn:latest}"
target="x86_64-unknown-linux-gnu"

echo "==> building a static cairn (glibc, crt-static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p cairn-node --bin cairn --target "$target"
bin="target/$target/release/cairn"
# A dynamic binary lists its libraries ("libc.so.6 => ..."); a static(-pie) one has no such line.
if ldd "$bin" 2>&1 | grep -q "=>"; then
  echo "error: $bin is dynamically linked; the scratch image needs a static binary" >&2
  exit 1
fi

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
docker build -q -t "$tag" "$ctx" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "image $tag: $((size / 1024 / 1024)) MiB ($size bytes)"
