"""moderation/ is a library of its own: no gRPC, no protobuf messages, no database, nothing from gateway/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import moderation

FORBIDDEN = ("grpc", "google.protobuf", "sqlalchemy", "alembic", "gateway")
ROOT = Path(moderation.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_forbidden_imports() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            assert not name.startswith(FORBIDDEN), f"{path.relative_to(ROOT)} imports {name}"
            assert not name.endswith("_pb2") and "_pb2" not in name, f"{path} imports {name}"


def test_importing_the_core_stays_light() -> None:
    # the gateway's CLI imports moderation.config; torch/detoxify/sklearn must load only when configured
    code = (
        "import sys, moderation.config, moderation.streaming, moderation.evaluation, moderation.identity,"
        " moderation.report, moderation.report_render, moderation.replay;"
        "heavy = [m for m in ('torch', 'detoxify', 'sklearn', 'transformers', 'grpc') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
