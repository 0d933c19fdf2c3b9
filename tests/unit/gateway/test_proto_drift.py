"""The generated code in gateway/api/v1 (and the copies of the .proto files shipped beside it) must be
exactly what `make proto` produces from protos/."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    protos = sorted((ROOT / "protos/gateway/api/v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *map(str, protos),
        ],
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in (tmp_path / "gateway/api/v1").iterdir())
    assert generated, "protoc produced nothing"
    for rel in generated:
        committed = ROOT / rel
        assert committed.exists(), f"{rel} is not committed: run `make proto`"
        assert committed.read_text() == (tmp_path / rel).read_text(), (
            f"{rel} differs from protos/: run `make proto`"
        )


def test_shipped_protos_are_copies_of_protos() -> None:
    sources = {p.name: p.read_text() for p in (ROOT / "protos/gateway/api/v1").glob("*.proto")}
    shipped = {p.name: p.read_text() for p in (ROOT / "gateway/api/v1").glob("*.proto")}
    assert sources, "no .proto files found"
    assert shipped == sources, "gateway/api/v1/*.proto differ from protos/: run `make proto`"
