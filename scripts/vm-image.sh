#!/usr/bin/env bash
# A bootable cairn appliance for any hypervisor (BIOS + extlinux, qcow2), since Nix cannot be run here:
# Debian 12 minbase from debootstrap, its kernel, systemd, the static cairn binary and the systemd unit that
# `provision render` writes. Nothing member-specific is in the image: at first boot cairn-seed.service mounts a
# second disk labelled CAIRNSEED (made by the `seed` command from one rendered member directory) and copies
# cairn.env and pki/ into /etc/cairn, then cairn starts.
#
# Usage:
#   scripts/vm-image.sh build [OUT.qcow2]          default out/vm/cairn-appliance.qcow2; skipped when the
#                                                  inputs (binary, unit, this script) are unchanged
#   scripts/vm-image.sh seed NODE_DIR OUT.img      NODE_DIR = OUT/nodes/<name> of `provision render`
# Boot:  qemu-system-x86_64 -accel tcg -m 1024 -nographic -drive file=OUT.qcow2,if=virtio \
#          -drive file=seed.img,if=virtio,format=raw -nic user,hostfwd=tcp:127.0.0.1:2379-:2379
# The member's address must be the guest's: 10.0.2.15 with QEMU's user network.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
repo="$(dirname "$self")/.."
cmd="${1:-}"

die() { echo "error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 missing: install the Debian package $2 (scripts/deps.sh does)"; }

seed() {
  local node="${1:-}" out="${2:-}"
  [ -n "$node" ] && [ -n "$out" ] || die "usage: scripts/vm-image.sh seed NODE_DIR OUT.img"
  [ -f "$node/cairn.env" ] && [ -d "$node/pki" ] || die "$node has no cairn.env and pki/: pass OUT/nodes/<name> of provision render"
  need mkfs.ext4 e2fsprogs
  local dir
  dir=$(mktemp -d)
  cp "$node/cairn.env" "$dir/"
  cp -r "$node/pki" "$dir/"
  rm -f "$out"
  # -d fills the filesystem from a directory: no mount, no loop device.
  mkfs.ext4 -q -L CAIRNSEED -d "$dir" "$out" 8M
  rm -rf "$dir"
  echo "seed $out: $(basename "$node")'s cairn.env and pki/ (label CAIRNSEED)"
}

build() {
  local out="${1:-$repo/out/vm/cairn-appliance.qcow2}"
  for t in debootstrap:debootstrap extlinux:extlinux sfdisk:fdisk mkfs.ext4:e2fsprogs qemu-img:qemu-utils losetup:mount; do
    need "${t%%:*}" "${t##*:}"
  done
  [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, loop devices)"
  mkdir -p "$(dirname "$out")"

  echo "==> static cairn and provision"
  (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p cairn-node \
    --bin cairn --target x86_64-unknown-linux-gnu && cargo build --locked -p provision --bin provision)
  local bin="$repo/target/x86_64-unknown-linux-gnu/release/cairn"
  # Globals, not locals: the EXIT trap runs after this function has returned.
  work=$(mktemp -d /var/tmp/cairn-vm.XXXXXX)
  mnt="$work/mnt"
  loop=""
  cleanup() {
    mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
    rm -rf "$work"
  }
  trap cleanup EXIT

  # The unit is the one provision renders for every member (its sandbox is tested there); only the
  # member name in Description is made generic, since the image serves any member.
  cat >"$work/cluster.yaml" <<'EOF'
cluster: { name: appliance, bootstrap: static, data_dir: /var/lib/cairn, config_dir: /etc/cairn }
tls: { enabled: true, clients: [admin] }
firewall: { backend: none }
nodes: [ { name: member, address: 10.0.2.15 } ]
EOF
  "$repo/target/debug/provision" render "$work/cluster.yaml" -o "$work/render" >/dev/null
  sed 's/^Description=.*/Description=Cairn key-value member (settings in \/etc\/cairn\/cairn.env, from the seed disk)/' \
    "$work/render/nodes/member/systemd/cairn.service" >"$work/cairn.service"

  local inputs
  inputs=$(cat "$bin" "$work/cairn.service" "$self" | sha256sum | cut -d' ' -f1)
  if [ -f "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "image $out: $(( $(stat -c %s "$out") / 1024 / 1024 )) MiB qcow2, up to date (same binary, unit and script)"
    return
  fi

  local root="$work/rootfs" mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  local pkgs=linux-image-amd64,systemd,systemd-sysv,udev,dbus,kmod,iproute2,ca-certificates,e2fsprogs,util-linux
  echo "==> debootstrap bookworm minbase + kernel ($mirror)"
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above); is $mirror reachable?"
  }
  echo "    $((SECONDS - t0)) s"

  echo "==> cairn, its unit, first-boot seeding, network"
  install -m 0755 "$bin" "$root/usr/local/bin/cairn"
  chroot "$root" useradd --system --user-group --home-dir /var/lib/cairn --shell /usr/sbin/nologin cairn
  install -m 0644 "$work/cairn.service" "$root/etc/systemd/system/cairn.service"
  install -d -m 0755 "$root/usr/local/lib/cairn"
  cat >"$root/usr/local/lib/cairn/seed.sh" <<'EOF'
#!/bin/sh
# Copies this member's cairn.env and pki/ from the disk labelled CAIRNSEED into /etc/cairn (first boot only).
set -eu
dev=""
for _ in $(seq 1 60); do
  dev=$(blkid -L CAIRNSEED || true)
  [ -n "$dev" ] && break
  sleep 0.5
done
[ -n "$dev" ] || { echo "cairn-seed: no disk labelled CAIRNSEED; attach the one scripts/vm-image.sh seed made" >&2; exit 1; }
mkdir -p /run/cairn-seed
mount -o ro "$dev" /run/cairn-seed
trap 'umount /run/cairn-seed' EXIT
[ -f /run/cairn-seed/cairn.env ] || { echo "cairn-seed: $dev has no cairn.env" >&2; exit 1; }
install -d -m 0750 -o root -g cairn /etc/cairn
install -d -m 0700 -o cairn -g cairn /etc/cairn/pki
install -m 0640 -o root -g cairn /run/cairn-seed/cairn.env /etc/cairn/cairn.env
for f in /run/cairn-seed/pki/*; do install -m 0600 -o cairn -g cairn "$f" /etc/cairn/pki/; done
mkdir -p /var/lib/cairn-seed
date -u >/var/lib/cairn-seed/done
echo "cairn-seed: /etc/cairn filled from $dev"
EOF
  chmod 0755 "$root/usr/local/lib/cairn/seed.sh"
  cat >"$root/etc/systemd/system/cairn-seed.service" <<'EOF'
[Unit]
Description=Copy this member's cairn settings and certificates from the CAIRNSEED disk (first boot)
After=local-fs.target
Before=cairn.service
ConditionPathExists=!/var/lib/cairn-seed/done

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/cairn/seed.sh

[Install]
WantedBy=multi-user.target
RequiredBy=cairn.service
EOF
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/systemd/system/cairn.service.requires"
  ln -sf /etc/systemd/system/cairn.service "$root/etc/systemd/system/multi-user.target.wants/cairn.service"
  ln -sf /etc/systemd/system/cairn-seed.service "$root/etc/systemd/system/multi-user.target.wants/cairn-seed.service"
  ln -sf /etc/systemd/system/cairn-seed.service "$root/etc/systemd/system/cairn.service.requires/cairn-seed.service"
  cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
  chroot "$root" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
  echo cairn >"$root/etc/hostname"
  printf 'LABEL=cairnroot / ext4 errors=remount-ro 0 1\n' >"$root/etc/fstab"
  # No login at all: the serial console shows boot and cairn's logs; operators reach cairn over TLS.
  chroot "$root" passwd -l root >/dev/null
  : >"$root/etc/machine-id"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

  echo "==> disk: MBR, one ext4 partition, extlinux"
  local kernel initrd
  kernel=$(cd "$root/boot" && ls vmlinuz-* | head -n1)
  initrd=$(cd "$root/boot" && ls initrd.img-* | head -n1)
  [ -n "$kernel" ] && [ -n "$initrd" ] || die "no kernel or initrd in $root/boot"
  mkdir -p "$root/boot/extlinux"
  cat >"$root/boot/extlinux/extlinux.conf" <<EOF
DEFAULT cairn
TIMEOUT 1
PROMPT 0
LABEL cairn
  LINUX /boot/$kernel
  INITRD /boot/$initrd
  APPEND root=LABEL=cairnroot ro console=ttyS0,115200 net.ifnames=0
EOF
  local raw="$work/disk.raw" size_mib=1536
  truncate -s "${size_mib}M" "$raw"
  echo 'start=2048, type=83, bootable' | sfdisk -q "$raw"
  loop=$(losetup --find --show --offset $((2048 * 512)) --sizelimit $(((size_mib - 1) * 1024 * 1024)) "$raw")
  # extlinux (syslinux 6.04) cannot read ext4's 64bit and metadata_csum features.
  mkfs.ext4 -q -L cairnroot -O ^64bit,^metadata_csum "$loop"
  mkdir -p "$mnt"
  mount "$loop" "$mnt"
  tar -C "$root" -c . | tar -C "$mnt" -x
  extlinux --install "$mnt/boot/extlinux" >/dev/null 2>&1
  umount "$mnt"
  losetup -d "$loop"
  loop=""
  dd if=/usr/lib/EXTLINUX/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
  qemu-img convert -c -O qcow2 "$raw" "$out"
  echo "$inputs" >"$out.inputs"
  echo "image $out: $(( $(stat -c %s "$out") / 1024 / 1024 )) MiB qcow2 (${size_mib} MiB disk), built in $((SECONDS - t0)) s"
}

case "$cmd" in
  build) shift; build "$@" ;;
  seed) shift; seed "$@" ;;
  *) echo "usage: scripts/vm-image.sh build [OUT.qcow2] | seed NODE_DIR OUT.img" >&2; exit 2 ;;
esac
