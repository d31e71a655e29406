#!/usr/bin/env bash
# Fetches etcd 3.5 (Debian trixie's etcd-server/etcd-client 3.5.16) without installing it: a private apt
# source list, `apt-get download`, `dpkg-deb -x`. Prints the directory holding etcd, etcdctl and etcdutl.
# Idempotent: a second call only prints the path. Debian 12's own etcd stays 3.4 at /usr/bin.
set -euo pipefail
dest="${CAIRN_ETCD35_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn/etcd-3.5}"
if [ -x "$dest/usr/bin/etcd" ] && [ -x "$dest/usr/bin/etcdutl" ]; then
  echo "$dest/usr/bin"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{etc/apt/sources.list.d,etc/apt/preferences.d,lists/partial,cache/archives/partial,state} "$dest"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
  >"$work/etc/apt/sources.list"
touch "$work/state/status"
apt_opts=(-o "Dir::Etc=$work/etc/apt" -o "Dir::State=$work/state" -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache=$work/cache" -o "Dir::State::status=$work/state/status" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root -qq)
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" download etcd-server etcd-client >&2)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
"$dest/usr/bin/etcd" --version | head -1 >&2
echo "$dest/usr/bin"
