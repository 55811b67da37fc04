"""Generate the Python stubs of the wire protocol into moerge/_proto/.

    python protos/generate.py          # regenerate
    python protos/generate.py --check  # fail when the committed stubs are stale

The sources live in protos/moerge/v1/*.proto and import each other as
"moerge/v1/...". Generated modules are rewritten to import their siblings
from moerge._proto.v1, since the proto package path and the Python package
path differ.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "protos"
TARGET = ROOT / "moerge" / "_proto" / "v1"
IMPORT = re.compile(r"^from moerge\.v1 import ", re.MULTILINE)
INIT = '"""Generated gRPC stubs of the moerge wire protocol. Never edit by hand."""\n'


def generate(out: Path) -> None:
    protos = sorted(
        str(p.relative_to(SOURCES)) for p in (SOURCES / "moerge" / "v1").glob("*.proto")
    )
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{SOURCES}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted((Path(tmp) / "moerge" / "v1").iterdir()):
            text = IMPORT.sub("from moerge._proto.v1 import ", path.read_text())
            (out / path.name).write_text(text)
    (out / "__init__.py").write_text(INIT)
    (out.parent / "__init__.py").write_text(INIT)


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): p.read_text()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_proto" / "v1"
        generate(fresh)
        expected, actual = snapshot(fresh.parent), snapshot(TARGET.parent)
    if expected == actual:
        print("generated stubs are up to date")
        return 0
    for name in sorted(set(expected) | set(actual)):
        diff = difflib.unified_diff(
            actual.get(name, "").splitlines(),
            expected.get(name, "").splitlines(),
            f"committed/{name}",
            f"fresh/{name}",
            lineterm="",
            n=1,
        )
        for line in list(diff)[:40]:
            print(line)
    print("moerge/_proto is stale: run `make protos` and commit the result", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the stubs are stale")
    if parser.parse_args().check:
        return check()
    if TARGET.parent.exists():
        shutil.rmtree(TARGET.parent)
    generate(TARGET)
    print(f"generated {len(list(TARGET.glob('*.py')))} modules into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
