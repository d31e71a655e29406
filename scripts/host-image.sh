#!/usr/bin/env bash
# Builds `cairn-host:bookworm`, a Docker image that behaves like a small Debian 12 server: systemd as PID 1,
# sshd, sudo, python3 (for Ansible), rsyslog, logrotate, nftables. No registry is reachable, so the root
# filesystem comes from `debootstrap` and is imported with `docker import`. The image is built once and reused
# (pass --rebuild to force). Test hosts for `provision apply` and the Ansible role run from it.
#
# Usage: scripts/host-image.sh [--rebuild] [TAG]
# Run a host:  docker run -d --cap-add NET_ADMIN --cap-add SYS_ADMIN -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#                --tmpfs /run --tmpfs /run/lock --tmpfs /tmp --network NET --ip ADDR --hostname NAME TAG
# (--privileged is refused by this machine's container runtime; these two capabilities are enough for
# systemd's sandboxing of units and for loading nftables rules.)
set -euo pipefail
rebuild=0
if [ "${1:-}" = "--rebuild" ]; then rebuild=1; shift; fi
tag="${1:-cairn-host:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "$rebuild" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag already present (scripts/host-image.sh --rebuild to build it again)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap missing: run scripts/deps.sh" >&2; exit 1; }

work=$(mktemp -d /var/tmp/cairn-host.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
pkgs=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,rsyslog,logrotate,nftables,iproute2,procps,ca-certificates,curl,netcat-openbsd

echo "==> debootstrap bookworm ($mirror) into $root"
debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "error: debootstrap failed (full log above); is $mirror reachable?" >&2
  exit 1
}

echo "==> configuring the root filesystem"
# Units that make no sense in a container or that would slow boot down.
for u in systemd-networkd-wait-online.service getty@tty1.service console-getty.service \
         systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done
ln -sf /lib/systemd/system/ssh.service "$root/etc/systemd/system/multi-user.target.wants/ssh.service"
# Host keys are generated per container at first boot, never baked into the shared image.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/hostkeys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
cat >"$root/etc/ssh/sshd_config.d/cairn-test.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
EOF
# An unprivileged operator account that becomes root with sudo, as on a real server.
chroot "$root" useradd -m -s /bin/bash -g operator -G sudo operator
echo 'operator ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/operator"
chmod 0440 "$root/etc/sudoers.d/operator"
mkdir -p "$root/root/.ssh" "$root/home/operator/.ssh"
chmod 0700 "$root/root/.ssh" "$root/home/operator/.ssh"
echo "container" >"$root/etc/container"
: >"$root/etc/machine-id"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "==> docker import $tag"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=docker' \
  - "$tag" >/dev/null
size=$(docker image inspect "$tag" --format '{{.Size}}')
echo "image $tag: $((size / 1024 / 1024)) MiB"
