"""Regenerate (or check) the committed protobuf code under ``src/**/proto/`` and ``examples/``.

Every ``.proto`` file is compiled by the protoc bundled in the pinned ``grpcio-tools``
(see the ``proto`` extra in pyproject.toml) into ``<name>_pb2.py`` plus a mypy-protobuf
stub ``<name>_pb2.pyi`` beside it. Each ``.proto`` is self-contained (no imports), since
protoc turns a proto import into an absolute Python import that breaks inside a package.

Usage: ``python tools/gen_proto.py`` rewrites the files; ``--check`` regenerates into a
temporary folder and exits 1 when the committed files differ.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def _generate(proto: Path, out_dir: Path) -> None:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    args = [
        "protoc",
        f"-I{proto.parent}",
        # protoc finds the mypy-protobuf plugin here even when the venv is not activated
        f"--plugin=protoc-gen-mypy={Path(sys.executable).parent / 'protoc-gen-mypy'}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        str(proto),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    protos = sorted(SRC.glob("**/proto/*.proto")) + sorted((ROOT / "examples").glob("*.proto"))
    stale: list[str] = []
    for proto in protos:
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                _generate(proto, Path(tmp))
                for produced in sorted(Path(tmp).iterdir()):
                    committed = proto.parent / produced.name
                    if not committed.exists() or not filecmp.cmp(produced, committed, shallow=False):
                        stale.append(str(committed.relative_to(ROOT)))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                _generate(proto, Path(tmp))
                for produced in Path(tmp).iterdir():
                    shutil.copyfile(produced, proto.parent / produced.name)
    if stale:
        print("stale generated protobuf code (run `make proto`):", *stale, sep="\n  ")
        return 1
    print(f"{len(protos)} proto file(s) {'up to date' if args.check else 'generated'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
