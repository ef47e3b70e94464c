"""The client against the daemon's /openapi.json: it must not drift.

The document is GODWIT_OPENAPI (a file) or fetched from the daemon at
GODWIT_SOCKET. Checks:
- the generated models and routes are what tools/gen.py makes of it;
- every operation the client calls (Client.call/stream/_request with an
  operationId, read from the source) exists, with the path and query
  parameters the call passes, and every model it builds has the fields it
  sets;
- every operation of the API is called by the client or listed in
  NOT_COVERED below with the reason.
"""

import ast
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import gen  # noqa: E402

import godwit  # noqa: E402
from godwit._transport import Transport  # noqa: E402

# Operations the client does not offer, and why. Adding an operation to
# the API fails this test until the client calls it or it is listed here.
NOT_COVERED = {
    "peer-join": "daemon to daemon: a host joining with a token (Hosts.add asks the other daemon to do it)",
    "peer-migration-preflight": "daemon to daemon: migration phase",
    "peer-migration-prepare": "daemon to daemon: migration phase",
    "peer-migration-finish": "daemon to daemon: migration phase",
    "peer-migration-keepalive": "daemon to daemon: migration phase",
    "peer-migration-upload": "daemon to daemon: files of an offline or cold move",
    "cluster-admit": "daemon to daemon: a cluster host admitting a joiner (Cluster.join asks this daemon to do it)",
    "vm-console-ws": "a websocket, which the standard library has no client for: console() reads the same output",
    "vm-vnc-ws": "a websocket carrying VNC, which the standard library has no client for (godwit vm vnc proxies it to a TCP port for a VNC viewer)",
}

CALLS = ("call", "stream", "_request")


def load_document():
    path = os.environ.get("GODWIT_OPENAPI")
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    sock = os.environ.get("GODWIT_SOCKET")
    if not sock:
        raise unittest.SkipTest("needs GODWIT_OPENAPI or GODWIT_SOCKET (a daemon's /openapi.json)")
    return json.loads(Transport(socket_path=sock).request("GET", "/openapi.json"))


def client_calls():
    """(operationId, path parameter names, query names, line) of every
    call in the package's source whose first argument is a string."""
    out = []
    pkg = os.path.join(ROOT, "godwit")
    for name in sorted(os.listdir(pkg)):
        if not name.endswith(".py") or name.startswith("_generated"):
            continue
        with open(os.path.join(pkg, name), encoding="utf-8") as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS):
                continue
            if not node.args or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
                continue
            params = node.args[1] if len(node.args) > 1 else None
            query = node.args[2] if len(node.args) > 2 else None
            for kw in node.keywords:
                if kw.arg == "params":
                    params = kw.value
                elif kw.arg == "query":
                    query = kw.value
            out.append((node.args[0].value, dict_keys(params), dict_keys(query), "%s:%d" % (name, node.lineno)))
    return out


def dict_keys(node):
    if isinstance(node, ast.Dict):
        return [k.value for k in node.keys if isinstance(k, ast.Constant)]
    return []


def model_constructions():
    """(model name, keyword names, line) of every m.Model(...) in client.py."""
    out = []
    with open(os.path.join(ROOT, "godwit", "client.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "m"):
            out.append((node.func.attr, [k.arg for k in node.keywords if k.arg], node.lineno))
    return out


class DriftTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.doc = load_document()
        cls.ops = {}
        for path, methods in cls.doc["paths"].items():
            for method, op in methods.items():
                params = {p["in"] + ":" + p["name"] for p in op.get("parameters", [])}
                cls.ops[op["operationId"]] = (method.upper(), path, params)

    def test_generated_code_is_current(self):
        with open(os.path.join(ROOT, "godwit", "_generated.py"), encoding="utf-8") as f:
            committed = f.read()
        if gen.generate(self.doc) != committed:
            self.fail("godwit/_generated.py differs from what tools/gen.py makes of the daemon's /openapi.json: "
                      "regenerate it (go test ./clients/python -run TestGenerated -update)")

    def test_every_call_names_an_operation_of_the_api(self):
        problems = []
        for op_id, params, query, where in client_calls():
            if op_id not in self.ops:
                problems.append("%s calls %s, which the API does not have" % (where, op_id))
                continue
            method, path, declared = self.ops[op_id]
            route = godwit.ROUTES.get(op_id)
            if route is None or (route.method, route.path) != (method, path):
                problems.append("%s: %s is %s %s in the API but %s in ROUTES" % (where, op_id, method, path, route))
            for p in params:
                if "path:" + p not in declared:
                    problems.append("%s: %s has no path parameter %s" % (where, op_id, p))
            for q in query:
                if "query:" + q not in declared:
                    problems.append("%s: %s has no query parameter %s" % (where, op_id, q))
        self.assertEqual(problems, [])

    def test_models_the_client_builds_have_those_fields(self):
        schemas = self.doc["components"]["schemas"]
        problems = []
        for model, kwargs, line in model_constructions():
            if model not in schemas:
                problems.append("client.py:%d builds %s, which the API does not have" % (line, model))
                continue
            fields = {py: js for py, js, _ in godwit.MODELS[model]._fields}
            for k in kwargs:
                if k not in fields or fields[k] not in schemas[model]["properties"]:
                    problems.append("client.py:%d sets %s.%s, which the API does not have" % (line, model, k))
        self.assertEqual(problems, [])

    def test_every_operation_is_covered_or_marked(self):
        used = {c[0] for c in client_calls()}
        missing = sorted(set(self.ops) - used - set(NOT_COVERED))
        self.assertEqual(missing, [], "operations of the API the client does not cover (call them, or add them "
                                      "to NOT_COVERED with the reason)")
        stale = sorted(k for k in NOT_COVERED if k not in self.ops or k in used)
        self.assertEqual(stale, [], "NOT_COVERED lists operations the API lacks or the client calls")


if __name__ == "__main__":
    unittest.main()
