#!/usr/bin/python3
"""The Python recipes of libvirt's "Application Development Guide Using
Python" (https://libvirt.org/docs/libvirt-appdev-guide-python/, also
W. David Ashley's "Foundations of Libvirt Development"), redone against
godwit: connect, define and start a guest, list guests with their stats,
snapshot, back up, migrate, stop.

Each recipe is a function; its docstring names the book's section and
shows the libvirt-python code it replaces. godwit does the XML, the disks
and the bookkeeping: a VM is a short spec, slow actions are operations to
wait on, and every error carries the daemon's message and HTTP status.

    python3 book_recipes.py --kernel K --initrd I [--socket S] [--dest-socket S2 --dest-host NAME]

--kernel and --initrd boot the guest directly (godwit's test guest does:
make guest); --dest-socket and --dest-host name a peer to migrate to
(without them the migrate recipe is skipped). test/e2e/python_test.go
runs this file on a two-host test bed.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import godwit  # noqa: E402


def say(*args):
    print(*args, flush=True)


def progress(op):
    """An operation's progress, as the book's examples print job info."""
    p = op.progress
    if p.total:
        say("  %s %s: %s %d/%d %s" % (op.kind, op.state, p.message or "", p.current or 0, p.total, p.unit or ""))
    else:
        say("  %s %s %s" % (op.kind, op.state, p.message or ""))


def connect(socket=None):
    """Connections > Opening a connection.

        conn = libvirt.open("qemu:///system")
        print(conn.getHostname(), conn.getInfo())

    godwit: one Client per daemon, over its unix socket (or https:// with a
    client certificate or a token)."""
    c = godwit.Client(socket=socket)
    host = c.host()
    say("connected to %s (%s): %d CPUs, %s memory, %s free, accelerator %s, libvirt %s" % (
        host.name, c.where, host.cpus, host.memory, host.memory_free, host.accel.chosen, host.libvirt.version))
    return c


def define_and_start(c, name, kernel, initrd):
    """Guest Domains > Lifecycle Control > Provisioning and Starting.

        dom = conn.defineXML(xml)     # a page of domain XML, disks made first
        dom.create()

    godwit: a spec; the disk is made, the domain defined and started by one
    operation, waited on with a progress callback."""
    spec = godwit.VMSpec(
        name=name, cpus=1, memory="192MiB",
        boot=godwit.Boot(kernel=kernel, initrd=initrd, cmdline="console=ttyS0 quiet"),
        disks=[godwit.Disk(name="root", size="64MiB")],
        labels={"recipe": "book"},
    )
    op = c.wait(c.vms.create(spec, start=True), progress=progress)
    vm = c.vms.get(name)
    say("defined and started %s: %s, uuid %s, disk %s" % (vm.name, vm.state, vm.uuid, vm.disks[0].path))
    return op


def list_with_stats(c):
    """Guest Domains > Listing Domains, and Monitoring Performance.

        for dom in conn.listAllDomains():
            state, maxmem, mem, vcpus, cputime = dom.info()
            dom.blockStats("vda"); dom.interfaceStats("vnet0")

    godwit: the VMs, and every VM's counters in one call (two samples give
    rates)."""
    first = c.stats()
    time.sleep(1)
    second = c.stats()
    before = {s.name: s for s in first.vms or []}
    say("%-20s %-9s %5s %10s %10s %8s" % ("NAME", "STATE", "VCPUS", "MEMORY", "RSS", "CPU%"))
    for vm in c.vms.list():
        s = next((s for s in second.vms or [] if s.name == vm.name), None)
        if s is None:
            say("%-20s %-9s" % (vm.name, vm.state))
            continue
        cpu = ""
        if vm.name in before:
            cpu = "%.1f" % (100.0 * (s.cpu_time_ns - before[vm.name].cpu_time_ns) / 1e9)
        say("%-20s %-9s %5d %10s %10s %8s" % (vm.name, vm.state, s.vcpus, s.memory_max, s.memory_rss, cpu))
        for d in s.disks or []:
            say("  disk %s: read %d B, written %d B" % (d.name, d.read_bytes, d.write_bytes))
    return second


def snapshot(c, name):
    """Snapshots (Guest Domains > hasCurrentSnapshot, virDomainSnapshot).

        snap = dom.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>")
        dom.listAllSnapshots(); snap.delete()

    godwit: a snapshot is a name (and options); listing shows the tree."""
    c.wait(c.snapshots.create(name, "before-change", description="taken by book_recipes.py"), progress=progress)
    for s in c.snapshots.list(name):
        say("snapshot %s of %s: %s, taken while %s, parent %s" % (s.name, s.vm, s.kind, s.vm_state, s.parent or "-"))
    c.wait(c.snapshots.delete(name, "before-change"))
    say("deleted snapshot before-change")


def back_up(c, name):
    """Backup: the book copies the guest's image (tar for a full backup,
    rsync for an incremental one) while the guest is shut off or paused;
    libvirt's own way is

        dom.backupBegin(backup_xml, checkpoint_xml)   # then watch the job,
        # copy the NBD export, keep checkpoints and the catalog yourself

    godwit: one call; the first backup is full, the next incremental, all in
    a deduplicating repository."""
    for _ in range(2):
        done = c.wait(c.backups.create(name), progress=progress)
        b = c.backups.get(name)
        say("backup %s: %s, %s of %s read, %s stored (operation %s)" % (
            b.id, b.mode, b.stats.bytes_read, b.size, b.stats.bytes_stored, done.id))
    return c.backups.list(vm=name)


def migrate(c, name, dest_host, dest_socket):
    """Guest Domains > Lifecycle Control > Migration.

        dconn = libvirt.open("qemu+ssh://dest/system")
        dom.migrate(dconn, libvirt.VIR_MIGRATE_LIVE, None, None, 0)

    godwit: the daemons move the VM between them (disks included), and the
    result is a report."""
    done = c.wait(c.vms.migrate(name, to=dest_host), progress=progress)
    report = done.result or {}
    say("migrated %s from %s to %s (%s): %s ms in all, %s ms down, %s bytes" % (
        name, report.get("from"), report.get("to"), report.get("mode"),
        report.get("totalMs"), report.get("downtimeMs"), report.get("bytes")))
    try:
        c.vms.get(name)
        raise SystemExit("%s is still on the source" % name)
    except godwit.NotFound:
        pass
    dest = godwit.Client(socket=dest_socket)
    vm = dest.vms.get(name)
    say("%s now runs on %s: %s" % (name, vm.host, vm.state))
    return dest


def stop(c, name):
    """Guest Domains > Lifecycle Control > Stopping.

        dom.shutdown()     # then poll dom.info() until it is off; dom.destroy() if not

    godwit: an ACPI shutdown that the operation waits out (force pulls the
    plug)."""
    c.wait(c.vms.stop(name, timeout=120), progress=progress)
    say("%s is %s" % (name, c.vms.get(name).state))


def errors(c):
    """Error Handling: libvirt.libvirtError with get_error_code(); here the
    daemon's message and HTTP status."""
    try:
        c.vms.get("no-such-vm")
    except godwit.NotFound as e:
        say("as expected: %s (status %d)" % (e.message, e.status))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", help="the daemon's socket (default: GODWIT_SOCKET or %s)" % godwit.DEFAULT_SOCKET)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--name", default="book-recipe")
    ap.add_argument("--dest-host", help="a peer host to migrate to")
    ap.add_argument("--dest-socket", help="that peer's socket, to follow the VM there")
    ap.add_argument("--keep", action="store_true", help="leave the VM (stopped) at the end")
    args = ap.parse_args(argv)

    c = connect(args.socket)
    define_and_start(c, args.name, args.kernel, args.initrd)
    list_with_stats(c)
    snapshot(c, args.name)
    back_up(c, args.name)
    if args.dest_host and args.dest_socket:
        c = migrate(c, args.name, args.dest_host, args.dest_socket)
    else:
        say("migrate: skipped (no --dest-host and --dest-socket)")
    stop(c, args.name)
    errors(c)
    if not args.keep:
        c.wait(c.vms.delete(args.name))
        say("deleted %s" % args.name)
    say("all recipes done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
