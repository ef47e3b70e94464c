"""The client against a daemon (GODWIT_SOCKET): calls that need no running
guest, so they pass on the fake hypervisor and on a real libvirtd alike.

GODWIT_TEST_KERNEL and GODWIT_TEST_INITRD name the test guest's boot
files; without them, empty stand-ins are made (the VMs here never start).
"""

import os
import secrets
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import godwit  # noqa: E402


def need_daemon():
    if not os.environ.get("GODWIT_SOCKET"):
        raise unittest.SkipTest("needs a daemon: GODWIT_SOCKET")
    return godwit.Client(socket=os.environ["GODWIT_SOCKET"])


def boot_files(test):
    kernel, initrd = os.environ.get("GODWIT_TEST_KERNEL"), os.environ.get("GODWIT_TEST_INITRD")
    if kernel and initrd:
        return kernel, initrd
    d = tempfile.mkdtemp(prefix="godwit-py-")
    test.addCleanup(lambda: [os.remove(os.path.join(d, f)) for f in os.listdir(d)] and os.rmdir(d))
    for f in ("vmlinuz", "initrd.gz"):
        open(os.path.join(d, f), "wb").close()
    return os.path.join(d, "vmlinuz"), os.path.join(d, "initrd.gz")


def guest_spec(test, name, cmdline=""):
    kernel, initrd = boot_files(test)
    return godwit.VMSpec(
        name=name, cpus=1, memory="192MiB",
        boot=godwit.Boot(kernel=kernel, initrd=initrd, cmdline=("console=ttyS0 quiet " + cmdline).strip()),
        disks=[godwit.Disk(name="root", size="64MiB")],
    )


def uniq(prefix):
    return "%s-%s" % (prefix, secrets.token_hex(3))


def delete_vm(c, name):
    try:
        c.wait(c.vms.delete(name, force=True), timeout=120)
    except godwit.NotFound:
        pass


class APITest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = need_daemon()

    def test_host(self):
        h = self.c.host()
        self.assertIsInstance(h, godwit.Host)
        self.assertTrue(h.name)
        self.assertIn(h.accel.chosen, ("kvm", "tcg"))
        self.assertTrue(self.c.healthz())

    def test_create_show_list_delete_with_progress(self):
        name = uniq("py-api")
        self.addCleanup(delete_vm, self.c, name)
        seen = []
        op = self.c.vms.create(guest_spec(self, name))
        self.assertIsInstance(op, godwit.Operation)
        self.assertEqual((op.kind, op.target), ("vm.create", "vm/" + name))
        done = self.c.wait(op, progress=seen.append, timeout=120)
        self.assertEqual(done.state, "succeeded")
        self.assertTrue(seen, "the progress callback was never called")
        self.assertEqual(seen[-1].state, "succeeded", "the last progress call is the final state")

        vm = self.c.vms.get(name)
        self.assertEqual((vm.name, vm.state, vm.managed), (name, "stopped", True))
        self.assertEqual(vm.spec.memory, "192MiB")
        self.assertEqual([d.name for d in vm.disks], ["root"])
        self.assertIn(name, [v.name for v in self.c.vms.list()])
        self.assertIn(op.id, [o.id for o in self.c.operations.list(target="vm/" + name)])

        self.c.wait(self.c.vms.delete(name), timeout=120)
        with self.assertRaises(godwit.NotFound):
            self.c.vms.get(name)

    def test_errors_carry_message_and_status(self):
        name = uniq("py-missing")
        with self.assertRaises(godwit.NotFound) as cm:
            self.c.vms.get(name)
        self.assertEqual(cm.exception.status, 404)
        self.assertIn(name, cm.exception.message)

        bad = guest_spec(self, uniq("py-bad"))
        bad.cpus = 0
        with self.assertRaises(godwit.BadRequest) as cm:
            self.c.vms.create(bad)
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("cpus", cm.exception.fields, cm.exception.message)

        # A field the API does not know is refused by name, not dropped.
        with self.assertRaises(godwit.BadRequest) as cm:
            self.c.vms.create(dict(guest_spec(self, uniq("py-bad")).to_dict(), colour="blue"))
        self.assertIn("colour", cm.exception.message)

        with self.assertRaises(godwit.NotFound):
            self.c.operations.get("no-such-operation")
        with self.assertRaises(godwit.NotFound):
            self.c.vms.adopt(name, dry_run=True)
        with self.assertRaises(godwit.NotFound):
            self.c.snapshots.list(name)

    def test_adopt_and_release_refuse_what_godwit_made(self):
        name = uniq("py-own")
        self.addCleanup(delete_vm, self.c, name)
        self.c.wait(self.c.vms.create(guest_spec(self, name)), timeout=120)
        with self.assertRaises(godwit.Conflict) as cm:
            self.c.vms.adopt(name, dry_run=True)
        self.assertIn("already", cm.exception.message)
        with self.assertRaises(godwit.Conflict) as cm:
            self.c.vms.release(name)
        self.assertIn("not adopted", cm.exception.message)

    def test_conflict_and_operation_error(self):
        name = uniq("py-dup")
        self.addCleanup(delete_vm, self.c, name)
        self.c.wait(self.c.vms.create(guest_spec(self, name)), timeout=120)
        with self.assertRaises(godwit.Conflict) as cm:
            self.c.wait(self.c.vms.create(guest_spec(self, name)), timeout=120)
        self.assertEqual(cm.exception.status, 409)
        self.assertIn(name, cm.exception.message)

    def test_events_see_operations(self):
        name = uniq("py-ev")
        self.addCleanup(delete_vm, self.c, name)
        with self.c.events(type="operation", timeout=60) as stream:
            op = self.c.vms.create(guest_spec(self, name))
            for ev in stream:
                self.assertIsInstance(ev, godwit.Event)
                if ev.operation and ev.operation.id == op.id and ev.operation.state == "succeeded":
                    break
            else:
                self.fail("no event said the create succeeded")
            self.assertTrue(stream.last_id)

    def test_networks_pools_volumes_images(self):
        self.assertTrue(self.c.pools.list(), "the daemon has its own pool")
        pool = self.c.host().pool
        name = uniq("py-vol")
        vol = self.c.volumes.create(pool, name, "1MiB", format="raw")
        self.addCleanup(lambda: self.c.volumes.delete(pool, name))
        self.assertEqual((vol.pool, vol.name), (pool, name))
        self.assertIn(name, [v.name for v in self.c.volumes.list(pool=pool)])
        self.assertEqual(self.c.volumes.get(pool, name).capacity, "1MiB")
        self.assertIsInstance(self.c.images.list(), list)
        self.assertIsInstance(self.c.networks.list(), list)
        with self.assertRaises(godwit.NotFound):
            self.c.images.get(uniq("py-img"))


if __name__ == "__main__":
    unittest.main()
