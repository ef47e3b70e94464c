#!/usr/bin/env bash
# build.sh OUTDIR: build godwit's tiny test guest into OUTDIR/vmlinuz and
# OUTDIR/initrd.gz: a Debian kernel (from the linux-image package, no install)
# and a busybox-static initramfs running ./init. Nothing is rebuilt when both
# files exist and ./init has not changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

stamp=$(sha256sum "$here/init" "$here/build.sh" | sha256sum | cut -c1-16)
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "guest: up to date in $out"
	exit 0
fi
for cmd in busybox cpio apt-get dpkg; do
	command -v $cmd >/dev/null || { echo "guest: $cmd is missing (run scripts/host-setup.sh)" >&2; exit 1; }
done
[ -x /bin/busybox ] && file_bb=/bin/busybox || file_bb=$(command -v busybox)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# The kernel package linux-image-amd64 points at (e.g. linux-image-6.1.0-57-amd64).
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "guest: cannot find the kernel package behind linux-image-amd64 (apt-get update?)" >&2; exit 1; }
echo "guest: fetching $pkg"
apt-get download -q "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q "$pkg" >/dev/null; }
dpkg -x ./*.deb kernel
rel=$(ls kernel/lib/modules)
mods=kernel/lib/modules/$rel/kernel

mkdir -p root/bin root/lib/modules root/proc root/sys root/dev root/etc root/tmp
cp "$file_bb" root/bin/busybox
for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
	drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/block/virtio_blk \
	net/core/failover drivers/net/net_failover drivers/net/virtio_net \
	drivers/acpi/button drivers/input/evdev drivers/virtio/virtio_balloon fs/fuse/fuse fs/fuse/virtiofs; do
	f=$mods/$m.ko
	[ -f "$f" ] || f=$(ls "$f".* 2>/dev/null | head -1)
	[ -n "$f" ] && [ -f "$f" ] || { echo "guest: module $m missing in $pkg" >&2; exit 1; }
	case $f in
	*.xz) xz -dc "$f" > "root/lib/modules/$(basename "$m").ko" ;;
	*.zst) zstd -qdc "$f" > "root/lib/modules/$(basename "$m").ko" ;;
	*) cp "$f" "root/lib/modules/$(basename "$m").ko" ;;
	esac
done
cp "$here/init" root/init
chmod +x root/init
(cd root && find . | cpio -o -H newc --quiet | gzip -9) > initrd.gz

cp kernel/boot/vmlinuz-"$rel" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv initrd.gz "$out/initrd.gz"
echo "$stamp" > "$out/.stamp"
echo "guest: built $out/vmlinuz ($rel) and $out/initrd.gz ($(du -k "$out/initrd.gz" | cut -f1) KiB)"
