#!/usr/bin/python3
"""Build the godwit client's wheel with the standard library only.

    python3 tools/build_wheel.py OUTDIR

writes OUTDIR/godwit-VERSION-py3-none-any.whl: the godwit package and its
.dist-info (METADATA, WHEEL, top_level.txt, RECORD), as PEP 427 and the
core metadata spec describe them. Name, version and the rest come from
pyproject.toml; the version must match godwit.__version__. File times are
SOURCE_DATE_EPOCH (default 1980-01-01), so the same sources give the same
bytes.
"""

import base64
import hashlib
import os
import re
import sys
import time
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def metadata(project, readme):
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % project["name"],
        "Version: %s" % project["version"],
        "Summary: %s" % project["description"],
        "Requires-Python: %s" % project["requires-python"],
    ]
    lines += ["Classifier: %s" % c for c in project.get("classifiers", [])]
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + readme


def sources(pkg):
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py") or f == "py.typed":
                full = os.path.join(dirpath, f)
                out.append((os.path.relpath(full, ROOT), full))
    return out


def build(outdir):
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    name, version = project["name"], project["version"]
    with open(os.path.join(ROOT, name, "__init__.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if not m or m.group(1) != version:
        raise SystemExit("pyproject.toml says version %s but %s/__init__.py says %s" % (version, name, m and m.group(1)))
    with open(os.path.join(ROOT, project.get("readme", "README.md")), encoding="utf-8") as f:
        readme = f.read()
    info = "%s-%s.dist-info" % (name, version)
    files = []
    for arc, full in sources(name):
        with open(full, "rb") as f:
            files.append((arc, f.read()))
    files.append((info + "/METADATA", metadata(project, readme).encode()))
    files.append((info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: godwit build_wheel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    files.append((info + "/top_level.txt", (name + "\n").encode()))
    record = "".join("%s,%s,%d\n" % (arc, digest(data), len(data)) for arc, data in files)
    record += info + "/RECORD,,\n"
    files.append((info + "/RECORD", record.encode()))

    stamp = time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800))[:6]
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "%s-%s-py3-none-any.whl" % (name, version))
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            zi = zipfile.ZipInfo(arc, stamp)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)
    os.replace(tmp, path)
    return path


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(build(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
