"""The client against a real daemon on a real libvirtd, with the test guest
running: GODWIT_TEST_LIVE=1, GODWIT_SOCKET, GODWIT_TEST_KERNEL and
GODWIT_TEST_INITRD (test/e2e/python_test.go sets them). With
GODWIT_TEST_TLS_URL and GODWIT_TEST_TLS_DIR (the daemon's --listen address
and its state/tls) the TLS tests run too.
"""

import contextlib
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import godwit  # noqa: E402
from tests.test_api import delete_vm, guest_spec, uniq  # noqa: E402


def need_live():
    if os.environ.get("GODWIT_TEST_LIVE") != "1" or not os.environ.get("GODWIT_SOCKET"):
        raise unittest.SkipTest("needs a real daemon and the test guest (GODWIT_TEST_LIVE=1; go test -run TestPython ./test/e2e/)")
    return godwit.Client(socket=os.environ["GODWIT_SOCKET"])


def wait_console(c, name, pattern, offset=0, timeout=120):
    """The first console line matching pattern, from byte offset on."""
    deadline = time.monotonic() + timeout
    with contextlib.closing(c.vms.follow_console(name, offset=offset, timeout=timeout)) as lines:
        for line in lines:
            if re.search(pattern, line):
                return line
            if time.monotonic() > deadline:
                break
    raise AssertionError("the console of %s never matched %r" % (name, pattern))


class LiveTest(unittest.TestCase):
    """One running guest through its life: start, stats, snapshot, backup,
    events, stop. One VM, since the guest runs under TCG."""

    @classmethod
    def setUpClass(cls):
        cls.c = need_live()

    def test_a_guest_through_its_life(self):
        c = self.c
        name = uniq("py-live")
        self.addCleanup(delete_vm, c, name)
        events = c.events(vm=name, timeout=120)
        self.addCleanup(events.close)

        # Create and start, waiting with a progress callback.
        states = []
        op = c.wait(c.vms.create(guest_spec(self, name), start=True), progress=lambda o: states.append(o.state), timeout=180)
        self.assertEqual(states[-1], "succeeded")
        self.assertEqual(c.vms.get(name).state, "running")
        self.assertTrue(wait_console(c, name, r"^tick 2 ").startswith("tick 2"))

        # The event stream saw the domain start.
        lifecycle = self.next_lifecycle(events, "started")
        self.assertEqual(lifecycle.vm, name)

        # Stats: every VM's counters in one call, and this one's.
        sample = c.stats()
        mine = [s for s in sample.vms if s.name == name]
        self.assertEqual(len(mine), 1, [s.name for s in sample.vms])
        self.assertEqual(mine[0].state, "running")
        self.assertGreater(mine[0].cpu_time_ns, 0)
        self.assertEqual(mine[0].vcpus, 1)
        later = c.vms.stats(name)
        self.assertGreaterEqual(later.cpu_time_ns, mine[0].cpu_time_ns)

        # A snapshot of the running guest, listed, shown, deleted.
        c.wait(c.snapshots.create(name, "py-snap", description="from python"), timeout=180)
        snaps = c.snapshots.list(name)
        self.assertEqual([s.name for s in snaps], ["py-snap"])
        self.assertEqual(c.snapshots.get(name, "py-snap").description, "from python")
        with self.assertRaises(godwit.Conflict):
            c.snapshots.create(name, "py-snap")
        c.wait(c.snapshots.delete(name, "py-snap"), timeout=180)
        self.assertEqual(c.snapshots.list(name), [])

        # A backup, with progress, then found in the catalog.
        seen = []
        done = c.wait(c.backups.create(name), progress=seen.append, timeout=300)
        self.assertEqual(done.kind, "backup.create")
        self.assertTrue(done.result, "a backup operation has a result")
        backups = c.backups.list(vm=name)
        self.assertEqual(len(backups), 1)
        self.assertEqual(backups[0].mode, "full")
        self.assertEqual(c.backups.get(name).id, backups[0].id, "a VM's name shows its newest backup")
        self.assertEqual([d.name for d in backups[0].disks], ["root"])

        # A second backup reads only what changed.
        c.wait(c.backups.create(name), timeout=300)
        self.assertEqual(c.backups.get(name).mode, "incremental")

        # Stop (ACPI): the stream says so, and the VM is stopped.
        c.wait(c.vms.stop(name, timeout=120), timeout=180)
        self.assertEqual(c.vms.get(name).state, "stopped")
        self.next_lifecycle(events, "stopped")

        # An operation that fails raises with the daemon's status.
        with self.assertRaises(godwit.Conflict) as cm:
            c.wait(c.vms.stop(name), timeout=60)
        self.assertEqual(cm.exception.status, 409)

    def next_lifecycle(self, events, want):
        for ev in events:
            if ev.type == "vm" and ev.lifecycle and ev.lifecycle.event == want:
                return ev
        self.fail("no %s lifecycle event" % want)


class TLSTest(unittest.TestCase):
    """The TCP API: a client certificate, tokens read and admin, refusals."""

    @classmethod
    def setUpClass(cls):
        cls.c = need_live()
        cls.url = os.environ.get("GODWIT_TEST_TLS_URL")
        cls.tls_dir = os.environ.get("GODWIT_TEST_TLS_DIR")
        if not cls.url or not cls.tls_dir:
            raise unittest.SkipTest("needs GODWIT_TEST_TLS_URL and GODWIT_TEST_TLS_DIR (a daemon with --listen)")
        cls.ca = os.path.join(cls.tls_dir, "ca.crt")

    def test_client_certificate(self):
        c = godwit.Client(url=self.url, tls_dir=self.tls_dir)
        self.assertEqual(c.host().name, self.c.host().name)
        self.assertIsInstance(c.vms.list(), list)

    def test_tokens(self):
        read = self.c.tokens.create(uniq("py-read"), scope="read")
        admin = self.c.tokens.create(uniq("py-admin"), scope="admin")
        self.addCleanup(lambda: [self.revoke(t.id) for t in (read, admin)])
        self.assertTrue(read.secret.startswith("gwt_"))

        reader = godwit.Client(url=self.url, ca_file=self.ca, token=read.secret)
        self.assertIsInstance(reader.vms.list(), list)
        with self.assertRaises(godwit.Forbidden) as cm:
            reader.vms.start(uniq("py-any"))
        self.assertEqual(cm.exception.status, 403)
        self.assertIn("admin", cm.exception.message)

        writer = godwit.Client(url=self.url, ca_file=self.ca, token=admin.secret)
        with self.assertRaises(godwit.NotFound):
            writer.vms.start(uniq("py-none"))
        with writer.events(timeout=5) as stream:  # streams carry the token too
            self.assertIsNotNone(stream)

        self.c.tokens.revoke(read.id)
        with self.assertRaises(godwit.Unauthorized) as cm:
            reader.vms.list()
        self.assertIn("revoked", cm.exception.message)

        nobody = godwit.Client(url=self.url, ca_file=self.ca, token="gwt_bogus_secret")
        with self.assertRaises(godwit.Unauthorized):
            nobody.host()

    def test_wrong_ca_is_unreachable(self):
        # The client certificate is no CA: the daemon's certificate does not verify.
        c = godwit.Client(url=self.url, ca_file=os.path.join(self.tls_dir, "client.crt"), token="gwt_x")
        with self.assertRaises(godwit.Unreachable) as cm:
            c.host()
        self.assertIn("TLS", str(cm.exception))

    def revoke(self, id):
        try:
            self.c.tokens.revoke(id)
        except godwit.APIError:
            pass  # revoked already


if __name__ == "__main__":
    unittest.main()
