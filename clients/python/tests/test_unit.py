"""Unit tests: no daemon needed."""

import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import godwit  # noqa: E402
from godwit import errors, events  # noqa: E402


class ModelTest(unittest.TestCase):
    def test_round_trip_keeps_json_names_and_unknown_fields(self):
        data = {"name": "web1", "cpus": 2, "memory": "1GiB", "cloudInit": {"sshKeys": ["ssh-ed25519 AAA"]},
                "disks": [{"name": "root", "size": "10GiB"}], "future": {"x": 1}}
        spec = godwit.VMSpec.from_dict(data)
        self.assertEqual(spec.cloud_init.ssh_keys, ["ssh-ed25519 AAA"])
        self.assertIsInstance(spec.disks[0], godwit.Disk)
        self.assertEqual(spec.unknown_fields, {"future": {"x": 1}})
        self.assertEqual(spec.to_dict(), data)

    def test_unset_fields_are_left_out(self):
        spec = godwit.VMSpec(name="a", cpus=1, memory="64MiB")
        self.assertEqual(spec.to_dict(), {"name": "a", "cpus": 1, "memory": "64MiB"})

    def test_python_keywords_get_an_underscore(self):
        self.assertEqual(godwit.RestoreRequest(as_="b").to_dict(), {"as": "b"})

    def test_required_fields_are_required(self):
        with self.assertRaises(TypeError):
            godwit.VMSpec(name="a")


class ErrorTest(unittest.TestCase):
    def test_status_picks_the_class(self):
        e = errors.from_response(404, "Not Found", b'{"error": "no VM named x", "code": 404}')
        self.assertIsInstance(e, godwit.NotFound)
        self.assertIsInstance(e, godwit.APIError)
        self.assertEqual((e.message, e.status, e.code), ("no VM named x", 404, 404))

    def test_fields_of_a_bad_request(self):
        e = errors.from_response(400, "Bad Request",
                                 b'{"error": "cpus: expected number >= 1; disks[0].size: bad size", "code": 400}')
        self.assertIsInstance(e, godwit.BadRequest)
        self.assertEqual(e.fields, ["cpus", "disks[0].size"])

    def test_an_answer_that_is_not_json(self):
        e = errors.from_response(502, "Bad Gateway", b"upstream down\n")
        self.assertEqual((type(e), e.message, e.status), (godwit.APIError, "upstream down", 502))
        e = errors.from_response(503, "Service Unavailable", b"")
        self.assertIsInstance(e, godwit.Unavailable)
        self.assertEqual(e.message, "503 Service Unavailable")


class SSETest(unittest.TestCase):
    def test_parse(self):
        text = ": godwit events\n\nid: 7\nevent: vm\ndata: {\"id\": 7}\n\n: keep-alive\n\nid: 8\ndata: a\ndata: b\n\nid: 9\n"
        got = list(events.parse(io.StringIO(text)))
        self.assertEqual(got, [("7", "vm", '{"id": 7}'), ("8", "message", "a\nb")])


class ClientTest(unittest.TestCase):
    def test_unknown_parameters_are_refused_before_sending(self):
        c = godwit.Client(socket="/nonexistent/godwit.sock")
        with self.assertRaisesRegex(TypeError, "no query parameter 'bogus'"):
            c.call("list-vms", query={"bogus": 1})
        with self.assertRaisesRegex(TypeError, "needs name"):
            c.call("get-vm")
        with self.assertRaisesRegex(TypeError, "needs a body"):
            c.call("create-vm")

    def test_no_daemon(self):
        c = godwit.Client(socket="/nonexistent/godwit.sock")
        with self.assertRaises(godwit.Unreachable) as cm:
            c.vms.list()
        self.assertIn("/nonexistent/godwit.sock", str(cm.exception))

    def test_tcp_needs_tls(self):
        with self.assertRaisesRegex(godwit.GodwitError, "only over TLS"):
            godwit.Client(url="http://127.0.0.1:1")
        with self.assertRaisesRegex(godwit.GodwitError, "needs the daemon's CA"):
            godwit.Client(url="https://127.0.0.1:1")

    def test_environment(self):
        old = dict(os.environ)
        try:
            os.environ.update({"GODWIT_SOCKET": "/tmp/x.sock", "GODWIT_HOST": ""})
            self.assertEqual(godwit.Client().where, "/tmp/x.sock")
            with tempfile.TemporaryDirectory() as d:
                # GODWIT_HOST wins over the default socket; its TLS dir is read at once.
                os.environ.update({"GODWIT_SOCKET": "", "GODWIT_HOST": "https://h:8443", "GODWIT_TLS_DIR": d})
                with self.assertRaisesRegex(godwit.GodwitError, "ca.crt"):
                    godwit.Client()
        finally:
            os.environ.clear()
            os.environ.update(old)


class PackageTest(unittest.TestCase):
    def test_standard_library_only(self):
        import ast
        import pkgutil

        root = os.path.dirname(godwit.__file__)
        stdlib = set(sys.stdlib_module_names)
        for mod in pkgutil.iter_modules([root]):
            with open(os.path.join(root, mod.name + ".py"), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                for n in names:
                    self.assertIn(n.split(".")[0], stdlib | {"__future__"}, "%s imports %s" % (mod.name, n))

    def test_json_of_every_route_kind_is_known(self):
        for op_id, r in godwit.ROUTES.items():
            for kind in [r.body, r.returns] + list(r.query.values()):
                if kind and kind not in ("bytes", "any", "str", "int", "bool", "float") and not kind.startswith("{"):
                    self.assertIn(kind.strip("[]"), godwit.MODELS, op_id)
        json.dumps(sorted(godwit.ROUTES))


if __name__ == "__main__":
    unittest.main()
