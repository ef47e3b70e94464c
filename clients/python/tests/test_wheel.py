"""The wheel tools/build_wheel.py makes: valid, complete, reproducible."""

import base64
import hashlib
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import build_wheel  # noqa: E402


class WheelTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.whl = build_wheel.build(self.dir.name)

    def test_contents_and_record(self):
        self.assertTrue(os.path.basename(self.whl).startswith("godwit-"))
        self.assertTrue(self.whl.endswith("-py3-none-any.whl"))
        with zipfile.ZipFile(self.whl) as z:
            names = z.namelist()
            info = [n for n in names if n.endswith(".dist-info/RECORD")][0].rsplit("/", 1)[0]
            for want in ("godwit/__init__.py", "godwit/_generated.py", "godwit/client.py", "godwit/py.typed",
                         info + "/METADATA", info + "/WHEEL"):
                self.assertIn(want, names)
            self.assertFalse([n for n in names if "__pycache__" in n or n.startswith("tests/")])
            meta = z.read(info + "/METADATA").decode()
            self.assertIn("Name: godwit\n", meta)
            self.assertIn("Requires-Python: >=3.11", meta)
            self.assertNotIn("Requires-Dist", meta, "standard library only")
            for line in z.read(info + "/RECORD").decode().splitlines():
                path, h, size = line.split(",")
                if path.endswith("RECORD"):
                    continue
                data = z.read(path)
                want = "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                self.assertEqual((h, int(size)), (want, len(data)), path)

    def test_reproducible(self):
        with tempfile.TemporaryDirectory() as other:
            with open(self.whl, "rb") as a, open(build_wheel.build(other), "rb") as b:
                self.assertEqual(a.read(), b.read())

    def test_installed_it_imports_with_nothing_else(self):
        target = os.path.join(self.dir.name, "site")
        pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
        if pip.returncode == 0:
            # pip (Debian's python3-pip) reads the wheel as any installer would.
            out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                                  "--disable-pip-version-check", "--target", target, self.whl],
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 0, out.stderr)
        else:
            with zipfile.ZipFile(self.whl) as z:
                z.extractall(target)
        # -S: no site-packages; the working directory is not this checkout.
        code = "import sys; sys.path.insert(0, %r); import godwit; godwit.Client(socket='/x'); print(godwit.__file__)" % target
        out = subprocess.run([sys.executable, "-S", "-c", code], cwd=self.dir.name, capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(out.stdout.strip().startswith(target), out.stdout)

if __name__ == "__main__":
    unittest.main()
