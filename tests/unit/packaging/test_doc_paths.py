"""Every repository path the README and docs/ name exists: a moved file must take its mentions along, and
no page points outside the repository (a reader of a clone has nothing else)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `code` spans and the targets of Markdown links
_CANDIDATE = re.compile(r"`([A-Za-z0-9_.~/-]+)`|\]\(([^)#\s]+)\)")


def _tracked_tops() -> set[str]:
    return {
        p.name
        for p in ROOT.iterdir()
        if not p.name.startswith(".") and p.name not in {"var", "build", "dist"}
    }


def named_paths(doc: Path) -> list[str]:
    """Paths a doc names as repository paths: starting with a top-level entry of the repository, or a
    relative link."""
    tops = _tracked_tops() | {".ci"}
    found = []
    for match in _CANDIDATE.finditer(doc.read_text()):
        code, link = match.groups()
        if link is not None:
            if not link.startswith(("http://", "https://", "mailto:")):
                found.append(link)
        elif code is not None and "/" in code and (code.split("/")[0] in tops or code.startswith("../")):
            found.append(code)
    return found


def test_named_paths_exist_and_stay_inside_the_repository() -> None:
    problems = []
    for doc in DOCS:
        for path in named_paths(doc):
            where = doc.relative_to(ROOT)
            target = (doc.parent / path) if path.split("/")[0] not in _tracked_tops() else ROOT / path
            resolved = target.resolve()
            if not resolved.is_relative_to(ROOT):
                problems.append(f"{where}: {path} is outside the repository")
            elif not resolved.exists():
                problems.append(f"{where}: {path} does not exist")
    assert not problems, "\n".join(problems)


def test_the_check_sees_the_paths_it_should() -> None:
    """A guard on the guard: the README's own layout paths are found, so an empty scan cannot pass."""
    named = named_paths(ROOT / "README.md")
    assert "requirements.lock" not in named  # no slash: not taken for a path
    assert any(p.startswith("gateway/") for p in named) and any(p.startswith("docs/") for p in named)


def test_the_architecture_page_names_every_gateway_module() -> None:
    """docs/architecture.md's module table is the map a newcomer reads first: it must match the tree."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    unnamed = [
        f"gateway/{p.name}"
        for p in sorted((ROOT / "gateway").iterdir())
        if not p.name.startswith(("__", ".")) and p.name != "py.typed" and f"gateway/{p.name}" not in page
    ]
    assert not unnamed, f"not in docs/architecture.md: {unnamed}"
