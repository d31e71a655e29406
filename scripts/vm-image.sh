#!/usr/bin/env bash
# A bootable cairn appliance for any hypervisor (BIOS + extlinux, qcow2), since Nix cannot be run here:
# Debian 12 minbase from debootstrap, its kernel, systemd, sshd, sudo, rsyslog, the static cairn binary and
# the systemd unit that `provision render` writes. Nothing member-specific is in the image (no host keys, no users):
# at every boot cairn-seed.service reads a second disk labelled CAIRNSEED (made by the `seed` command) and,
# when its contents differ from the last seed applied, installs what it carries: the login user (sudo, no
# password) with its authorized key, the SSH host key, a static address, the host name, and a member's
# cairn.env and pki/. A re-seeded disk is thus applied at the next boot; an unchanged one leaves what
# `provision apply` installed since alone. cairn starts once /etc/cairn/cairn.env exists.
#
# Usage:
#   scripts/vm-image.sh build [OUT.qcow2]          default out/vm/cairn-appliance.qcow2; skipped when the
#                                                  inputs (binary, unit, this script) are unchanged;
#                                                  CAIRN_VM_BINARY=PATH puts that cairn in instead of the
#                                                  static release build
#   scripts/vm-image.sh seed [NODE_DIR|-] OUT.img [--user NAME --authorized-key FILE.pub]
#                            [--host-key FILE] [--address CIDR] [--gateway IP] [--hostname NAME]
#       NODE_DIR = OUT/nodes/<name> of `provision render` (`-`: none, `provision apply` installs the member);
#       --host-key: an OpenSSH private key (FILE.pub beside it) the appliance presents, so known_hosts can be
#       written before the first boot; without it the appliance makes its own.
# Boot:  qemu-system-x86_64 -accel tcg -m 1024 -nographic -drive file=OUT.qcow2,if=virtio \
#          -drive file=seed.img,if=virtio,format=raw -nic user,hostfwd=tcp:127.0.0.1:2379-:2379
# Without --address the appliance asks DHCP (10.0.2.15 with QEMU's user network).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
repo="$(dirname "$self")/.."
cmd="${1:-}"

die() { echo "error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 missing: install the Debian package $2 (scripts/deps.sh does)"; }

seed() {
  local node="${1:-}" out="${2:-}"
  [ -n "$node" ] && [ -n "$out" ] || die "usage: scripts/vm-image.sh seed NODE_DIR|- OUT.img [options]"
  shift 2
  local user="" key="" hostkey="" address="" gateway="" hostname=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --user) user="$2" ;;
      --authorized-key) key="$2" ;;
      --host-key) hostkey="$2" ;;
      --address) address="$2" ;;
      --gateway) gateway="$2" ;;
      --hostname) hostname="$2" ;;
      *) die "seed: unknown option $1" ;;
    esac
    shift 2 || die "seed: $1 needs a value"
  done
  if [ -n "$user" ] || [ -n "$key" ]; then
    [ -n "$user" ] && [ -f "$key" ] || die "seed: --user and --authorized-key FILE.pub go together"
    [[ "$user" =~ ^[a-z_][a-z0-9_-]*$ ]] && [ "$user" != root ] || die "seed: --user $user: a plain user name other than root"
  fi
  [ -z "$hostkey" ] || { [ -f "$hostkey" ] && [ -f "$hostkey.pub" ]; } || die "seed: --host-key $hostkey needs $hostkey.pub beside it"
  need mkfs.ext4 e2fsprogs
  local dir
  dir=$(mktemp -d)
  if [ "$node" != - ]; then
    [ -f "$node/cairn.env" ] && [ -d "$node/pki" ] || die "$node has no cairn.env and pki/: pass OUT/nodes/<name> of provision render"
    cp "$node/cairn.env" "$dir/"
    cp -r "$node/pki" "$dir/"
  fi
  if [ -n "$user" ]; then
    mkdir -p "$dir/ssh"
    echo "$user" >"$dir/ssh/user"
    cp "$key" "$dir/ssh/authorized_keys"
  fi
  if [ -n "$hostkey" ]; then
    mkdir -p "$dir/ssh"
    cp "$hostkey" "$dir/ssh/host_key"
    cp "$hostkey.pub" "$dir/ssh/host_key.pub"
  fi
  if [ -n "$address" ]; then
    printf '[Match]\nName=eth0\n\n[Network]\nAddress=%s\n%s' "$address" "${gateway:+Gateway=$gateway
}" >"$dir/eth0.network"
  fi
  [ -z "$hostname" ] || echo "$hostname" >"$dir/hostname"
  rm -f "$out"
  truncate -s 8M "$out"
  # -d fills the filesystem from a directory: no mount, no loop device.
  mkfs.ext4 -q -L CAIRNSEED -d "$dir" "$out"
  echo "seed $out: $(cd "$dir" && find . -type f | sed 's|^./||' | sort | paste -sd' ') (label CAIRNSEED)"
  rm -rf "$dir"
}

build() {
  local out="${1:-$repo/out/vm/cairn-appliance.qcow2}"
  for t in debootstrap:debootstrap extlinux:extlinux sfdisk:fdisk mkfs.ext4:e2fsprogs qemu-img:qemu-utils losetup:mount; do
    need "${t%%:*}" "${t##*:}"
  done
  [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, loop devices)"
  mkdir -p "$(dirname "$out")"

  local bin="${CAIRN_VM_BINARY:-}"
  if [ -n "$bin" ]; then
    # A quicker loop while working on the image itself: any cairn that runs on Debian 12 (the debug build
    # links the same glibc), instead of the static release build with fat LTO (tens of minutes here).
    [ -x "$bin" ] || die "CAIRN_VM_BINARY=$bin is not an executable"
    bin=$(realpath "$bin")
    echo "==> cairn from CAIRN_VM_BINARY ($bin); provision"
    (cd "$repo" && cargo build --locked -p provision --bin provision)
  else
    echo "==> static cairn and provision"
    (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked -p cairn-node \
      --bin cairn --target x86_64-unknown-linux-gnu && cargo build --locked -p provision --bin provision)
    bin="$repo/target/x86_64-unknown-linux-gnu/release/cairn"
  fi
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
  local pkgs=linux-image-amd64,systemd,systemd-sysv,udev,dbus,kmod,iproute2,ca-certificates,e2fsprogs,util-linux,openssh-server,sudo,procps,rsyslog
  local t0=$SECONDS
  # The bare Debian root only depends on the package list and the mirror: kept as a tarball beside the
  # image, so changing cairn or this script's own files re-assembles the image without downloading again.
  local base
  base="$(dirname "$out")/rootfs-bookworm-$(echo "$pkgs $mirror" | sha256sum | cut -c1-12).tar"
  if [ -f "$base" ]; then
    echo "==> debootstrap bookworm minbase + kernel: reusing $base"
    mkdir "$root"
    tar -C "$root" -xf "$base"
  else
    echo "==> debootstrap bookworm minbase + kernel ($mirror)"
    debootstrap --variant=minbase --include="$pkgs" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
      tail -n 30 "$work/debootstrap.log" >&2
      die "debootstrap failed (log above); is $mirror reachable?"
    }
    rm -f "$root"/var/cache/apt/archives/*.deb
    tar -C "$root" -cf "$base.part" . && mv "$base.part" "$base"
    echo "    $((SECONDS - t0)) s"
  fi

  echo "==> cairn, its unit, first-boot seeding, network"
  install -m 0755 "$bin" "$root/usr/local/bin/cairn"
  chroot "$root" useradd --system --user-group --home-dir /var/lib/cairn --shell /usr/sbin/nologin cairn
  install -m 0644 "$work/cairn.service" "$root/etc/systemd/system/cairn.service"
  install -d -m 0755 "$root/usr/local/lib/cairn"
  cat >"$root/usr/local/lib/cairn/seed.sh" <<'EOF'
#!/bin/sh
# Applies the disk labelled CAIRNSEED when its contents differ from the seed applied last (so a re-seeded disk
# takes effect at the next boot, and an unchanged one leaves alone what `provision apply` installed since):
# ssh/user + ssh/authorized_keys (login user, sudo without password), ssh/host_key (+ .pub), eth0.network
# (static address), hostname, cairn.env + pki/ (the member's settings and certificates).
set -eu
dev=""
for _ in $(seq 1 60); do
  dev=$(blkid -L CAIRNSEED || true)
  [ -n "$dev" ] && break
  sleep 0.5
done
[ -n "$dev" ] || { echo "cairn-seed: no disk labelled CAIRNSEED; attach the one scripts/vm-image.sh seed made" >&2; exit 1; }
s=/run/cairn-seed
mkdir -p "$s"
mount -o ro "$dev" "$s"
trap 'umount /run/cairn-seed' EXIT
sum=$(cd "$s" && find . -type f ! -path './lost+found/*' | sort | xargs -r sha256sum | sha256sum | cut -d' ' -f1)
if [ "$(cat /var/lib/cairn-seed/applied 2>/dev/null)" = "$sum" ]; then
  echo "cairn-seed: $dev already applied"
  exit 0
fi
if [ -f "$s/ssh/user" ]; then
  user=$(cat "$s/ssh/user")
  # Debian's base-passwd already has some groups a login may be named after (operator, staff, users):
  # then that group is the user's primary group instead of a clash that fails useradd.
  if ! id "$user" >/dev/null 2>&1; then
    if getent group "$user" >/dev/null; then
      useradd -m -s /bin/bash -g "$user" -G sudo "$user"
    else
      useradd -m -s /bin/bash -U -G sudo "$user"
    fi
  fi
  install -d -m 0700 -o "$user" -g "$user" "/home/$user/.ssh"
  install -m 0600 -o "$user" -g "$user" "$s/ssh/authorized_keys" "/home/$user/.ssh/authorized_keys"
  echo "$user ALL=(ALL) NOPASSWD:ALL" >/etc/sudoers.d/cairn-seed
  chmod 0440 /etc/sudoers.d/cairn-seed
  echo "cairn-seed: login $user (sudo) with its authorized key"
fi
if [ -f "$s/ssh/host_key" ]; then
  rm -f /etc/ssh/ssh_host_*
  install -m 0600 "$s/ssh/host_key" /etc/ssh/ssh_host_seed_key
  install -m 0644 "$s/ssh/host_key.pub" /etc/ssh/ssh_host_seed_key.pub
  echo "HostKey /etc/ssh/ssh_host_seed_key" >/etc/ssh/sshd_config.d/cairn-seed-hostkey.conf
  echo "cairn-seed: SSH host key $(ssh-keygen -lf /etc/ssh/ssh_host_seed_key.pub | cut -d' ' -f2)"
fi
if [ -f "$s/eth0.network" ]; then
  install -m 0644 "$s/eth0.network" /etc/systemd/network/10-seed-eth0.network
  echo "cairn-seed: eth0 $(grep '^Address=' "$s/eth0.network" | cut -d= -f2)"
fi
if [ -f "$s/hostname" ]; then
  cat "$s/hostname" >/etc/hostname
  hostname "$(cat "$s/hostname")"
  # sudo resolves the host's own name on every call; without this line each one waits for DNS to fail.
  sed -i '/^127\.0\.1\.1[[:space:]]/d' /etc/hosts
  echo "127.0.1.1 $(cat "$s/hostname")" >>/etc/hosts
fi
if [ -f "$s/cairn.env" ]; then
  install -d -m 0750 -o root -g cairn /etc/cairn
  install -d -m 0700 -o cairn -g cairn /etc/cairn/pki
  install -m 0640 -o root -g cairn "$s/cairn.env" /etc/cairn/cairn.env
  for f in "$s"/pki/*; do install -m 0600 -o cairn -g cairn "$f" /etc/cairn/pki/; done
  echo "cairn-seed: /etc/cairn filled from $dev"
fi
mkdir -p /var/lib/cairn-seed
echo "$sum" >/var/lib/cairn-seed/applied
EOF
  chmod 0755 "$root/usr/local/lib/cairn/seed.sh"
  cat >"$root/etc/systemd/system/cairn-seed.service" <<'EOF'
[Unit]
Description=Apply the CAIRNSEED disk (login, host key, address, member settings) when it changed
DefaultDependencies=no
After=local-fs.target systemd-udev-settle.service systemd-udevd.service
Before=network-pre.target systemd-networkd.service ssh.service cairn.service systemd-user-sessions.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/cairn/seed.sh
# On the serial console too: there is no login before the seed is applied, so its errors must be seen there.
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
  # cairn waits for settings: before the seed or `provision apply` brings cairn.env it stays inactive
  # instead of failing in a loop.
  mkdir -p "$root/etc/systemd/system/cairn.service.d"
  cat >"$root/etc/systemd/system/cairn.service.d/appliance.conf" <<'EOF'
[Unit]
After=cairn-seed.service
ConditionPathExists=/etc/cairn/cairn.env
EOF
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/cairn.service "$root/etc/systemd/system/multi-user.target.wants/cairn.service"
  ln -sf /etc/systemd/system/cairn-seed.service "$root/etc/systemd/system/multi-user.target.wants/cairn-seed.service"
  # sshd: keys only; host keys come from the seed or are made at boot, never baked into the shared image.
  rm -f "$root"/etc/ssh/ssh_host_*
  mkdir -p "$root/etc/systemd/system/ssh.service.d"
  cat >"$root/etc/systemd/system/ssh.service.d/appliance.conf" <<'EOF'
[Unit]
After=cairn-seed.service
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c '[ -f /etc/ssh/ssh_host_seed_key ] || ssh-keygen -A'
ExecStartPre=/usr/sbin/sshd -t
EOF
  cat >"$root/etc/ssh/sshd_config.d/appliance.conf" <<'EOF'
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
  chroot "$root" systemctl enable ssh.service >/dev/null 2>&1
  cat >"$root/etc/systemd/network/80-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
  chroot "$root" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
  echo cairn >"$root/etc/hostname"
  # debootstrap writes no /etc/hosts: without one the host name does not resolve (sudo waits for DNS to
  # fail on every call) and the seed's hostname line has no file to go into.
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tcairn\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  # Boot to multi-user.target (no display manager here), where cairn, ssh and cairn-seed are wanted.
  ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
  printf 'LABEL=cairnroot / ext4 errors=remount-ro 0 1\n' >"$root/etc/fstab"
  # No password login anywhere: root is locked; the seed's user logs in over SSH with its key.
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
  extlinux --install "$mnt/boot/extlinux" >/dev/null
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
