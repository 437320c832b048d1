"""Generate the Python code of Tracehouse's own gRPC APIs from the .proto files here.

    python proto/generate.py            # writes into the collector package (`make proto`)
    python proto/generate.py OUT_DIR    # writes elsewhere (the drift test compares the two)

The generated files are committed; tests/e2e/test_grpc_query.py fails when they differ from what
this script produces, so the .proto sources and the code cannot drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = PROTO_ROOT.parent / "collector" / "src" / "tracehouse_collector" / "api" / "proto"
PACKAGE = "tracehouse_collector.api.proto"
PROTOS = ("tracehouse/query/v1/query.proto",)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools) for PROTOS into out_dir; returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in PROTOS:
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                f"--grpc_python_out={out_dir}",
                proto,
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {proto} (exit {code})")
    written = []
    for path in sorted(out_dir.rglob("*_pb2*.py*")):
        text = path.read_text()
        # protoc writes imports from the proto root ("from tracehouse.query.v1 import ..."),
        # which would name the SDK package `tracehouse`; point them into the collector package.
        fixed = text.replace("from tracehouse.", f"from {PACKAGE}.tracehouse.")
        if fixed != text:
            path.write_text(fixed)
        written.append(path)
    for directory in {p.parent for p in written} | {out_dir}:
        current = directory
        while current != out_dir.parent and current.is_relative_to(out_dir):
            init = current / "__init__.py"
            if not init.exists():
                init.write_text("")
            current = current.parent
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR
    for p in generate(target):
        print(p)
