#!/usr/bin/env bash
# host-setup.sh: make this machine ready to run godwit and its tests.
#
# Installs what is missing (Debian packages), fixes /dev/kvm permissions so
# libvirt does not re-probe QEMU on every call, and starts virtlogd and
# libvirtd when they are not running (machines without systemd need that).
# Safe to run again: every step checks before it acts.
set -euo pipefail

log() { printf 'host-setup: %s\n' "$*"; }
need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "host-setup: must run as root (installs packages and starts libvirtd)" >&2
		exit 1
	fi
}

# What to install comes from internal/prereq/programs.txt, the table the
# daemon reads too: each feature names the program it runs and the package
# that brings it. Setup looks for the programs, not for package names, and
# installs the packages of what is missing.
TABLE="$(cd "$(dirname "$0")/.." && pwd)/internal/prereq/programs.txt"
# --tests adds what only the tests run, --bench what only the benchmarks'
# baselines run (rsync, restic, borg).
SCOPES="run extra setup"
for arg in "$@"; do
	case $arg in
	--tests) SCOPES="$SCOPES test" ;;
	--bench) SCOPES="$SCOPES bench" ;;
	*) echo "host-setup: unknown argument $arg (--tests, --bench)" >&2; exit 2 ;;
	esac
done

have() { # have PROG[|PROG...]: one of them is installed (or the path exists)
	local p
	for p in ${1//|/ }; do
		case $p in
		/*) [ -e "$p" ] && return 0 ;;
		*) PATH="$PATH:/usr/sbin:/sbin" command -v "$p" >/dev/null 2>&1 && return 0 ;;
		esac
	done
	return 1
}

# kernel_has PACKAGE: this kernel has what the tests using the package
# need. Without it those tests skip as unsupported (testenv.SkipUnsupported,
# with the same check), so the package would be installed for nothing.
kernel_has() {
	case $1 in
	lvm2) grep -q device-mapper /proc/misc 2>/dev/null ;;
	nfs-kernel-server) grep -qE '[[:space:]]nfs4?$' /proc/filesystems 2>/dev/null ;;
	*) return 0 ;;
	esac
}

# missing_rows prints "package<TAB>program<TAB>feature" for each unmet row.
missing_rows() {
	local scope prog pkg feature
	while read -r scope prog pkg feature; do
		case $scope in ''|'#'*) continue ;; esac
		case " $SCOPES " in *" $scope "*) ;; *) continue ;; esac
		kernel_has "$pkg" || continue
		have "$prog" || printf '%s\t%s\t%s\n' "$pkg" "$prog" "$feature"
	done <"$TABLE"
}

install_packages() {
	local missing
	missing=$(missing_rows | cut -f1 | sort -u | xargs)
	[ -z "$missing" ] && return 0
	log "installing: $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# No recommends (they pull a desktop's worth), so every program a
	# feature runs is named in the table, dnsmasq-base among them.
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	local still
	still=$(missing_rows)
	if [ -n "$still" ]; then
		echo "host-setup: still missing after installing:" >&2
		printf '%s\n' "$still" | while IFS=$'\t' read -r pkg prog feature; do
			echo "  $feature: needs $prog (package $pkg)" >&2
		done
		exit 1
	fi
}

# /dev/kvm is often root-only where no udev runs. QEMU (user libvirt-qemu)
# then cannot open it and libvirt re-probes QEMU on every call: virsh define
# takes 40 s instead of 0.03 s. Hand it to the kvm group like udev would.
fix_kvm_permissions() {
	[ -c /dev/kvm ] || return 0
	getent group kvm >/dev/null || groupadd -r kvm
	if [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
		log "fixing /dev/kvm permissions (kvm group, 0660)"
		chgrp kvm /dev/kvm
		chmod 0660 /dev/kvm
	fi
}

libvirt_up() { virsh -c qemu:///system uri >/dev/null 2>&1; }

# libvirt backs a VM's memory with huge pages only on a hugetlbfs mount it
# found when it started (else: "hugetlbfs filesystem is not mounted").
# systemd mounts /dev/hugepages; without systemd nobody does. Mount it, and
# restart a system libvirtd that started before the mount (its VMs keep
# running: QEMU does not depend on libvirtd).
mount_hugetlbfs() {
	grep -q ' hugetlbfs ' /proc/mounts && return 0
	grep -q hugetlbfs /proc/filesystems || return 0
	log "mounting hugetlbfs on /dev/hugepages (what systemd's dev-hugepages.mount does)"
	mkdir -p /dev/hugepages
	mount -t hugetlbfs hugetlbfs /dev/hugepages
	local pid
	pid=$(cat /run/libvirtd.pid 2>/dev/null) || return 0
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	log "restarting libvirtd (pid $pid) so that it sees the mount"
	kill -TERM "$pid"
	for _ in $(seq 60); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	echo "host-setup: libvirtd (pid $pid) did not stop within 30 s" >&2
	exit 1
}

start_libvirt() {
	if libvirt_up; then
		return 0
	fi
	mkdir -p /run/libvirt
	if ! pidof virtlogd >/dev/null 2>&1; then
		log "starting virtlogd"
		virtlogd -d
	fi
	# The system libvirtd's pid file, not pidof: the test bed's libvirtds
	# (one per simulated host) are libvirtds too.
	if ! kill -0 "$(cat /run/libvirtd.pid 2>/dev/null)" 2>/dev/null; then
		log "starting libvirtd"
		libvirtd -d
	fi
	for _ in $(seq 120); do
		libvirt_up && break
		sleep 0.5
	done
	if ! libvirt_up; then
		echo "host-setup: libvirtd did not answer on qemu:///system within 60 s" >&2
		exit 1
	fi
	# A cold libvirtd probes QEMU several times; do it now, not in a test.
	virsh -c qemu:///system domcapabilities --virttype qemu >/dev/null 2>&1 || true
	log "libvirtd ready: $(virsh -c qemu:///system version --daemon 2>/dev/null | tail -1 | xargs)"
}

# Open vSwitch for `type: ovs` networks. Without systemd nothing starts it:
# start ovsdb-server (through ovs-ctl, which makes the database) and
# ovs-vswitchd. A kernel without the openvswitch module still runs bridges
# with the userspace datapath (datapath_type=netdev).
start_ovs() {
	command -v ovs-vsctl >/dev/null 2>&1 || return 0
	if ! pidof ovsdb-server >/dev/null 2>&1; then
		log "starting ovsdb-server"
		/usr/share/openvswitch/scripts/ovs-ctl --no-ovs-vswitchd --system-id=random start >/dev/null
	fi
	if ! pidof ovs-vswitchd >/dev/null 2>&1; then
		log "starting ovs-vswitchd"
		mkdir -p /var/log/openvswitch
		ovs-vswitchd --pidfile --detach --log-file >/dev/null 2>&1
	fi
	ovs-vsctl --timeout=10 show >/dev/null || { echo "host-setup: Open vSwitch does not answer" >&2; exit 1; }
}

need_root
install_packages
fix_kvm_permissions
mount_hugetlbfs
start_libvirt
start_ovs
