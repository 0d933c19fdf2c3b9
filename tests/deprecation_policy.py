"""A pytest plugin: deprecations raised at our own call sites fail the run once, with a list.

Why not `filterwarnings = error` for them: a dependency's new release that deprecates an argument we pass
raises its FutureWarning *at our line* (stacklevel), so "error" turned every test that generates into a
failure at once (transformers 5.24, 2026-11-30) and hid everything else the run had to say. Here the
tests run on, every test keeps its own verdict, and the session fails at the end with one report naming
each deprecated call of ours (file:line and message). Deprecations inside third-party code are shown in
pytest's warnings summary only: nothing we can fix from here.

Which files are ours: the `deprecation_roots` ini option (folders relative to the root directory).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
DEFAULT_ROOTS = ("gateway", "moderation", "tests", "bench")


@dataclass(frozen=True)
class Deprecation:
    filename: str
    lineno: int
    category: str
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}: {self.category}: {self.message}"


def ours(records: Iterable[warnings.WarningMessage], roots: Iterable[Path]) -> list[Deprecation]:
    """The deprecation warnings attributed to a file under one of `roots`, each call site once."""
    resolved = [root.resolve() for root in roots]
    found: dict[tuple[str, int, str], Deprecation] = {}
    for record in records:
        if not issubclass(record.category, DEPRECATIONS):
            continue
        path = Path(record.filename).resolve()
        if "site-packages" in path.parts or not any(path.is_relative_to(root) for root in resolved):
            continue
        key = (str(path), record.lineno, str(record.message))
        found.setdefault(
            key, Deprecation(str(path), record.lineno, record.category.__name__, str(record.message))
        )
    return list(found.values())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "deprecation_roots",
        type="linelist",
        default=list(DEFAULT_ROOTS),
        help="folders whose deprecated calls fail the run (tests/deprecation_policy.py)",
    )


class _Collector:
    """Keeps every recorded warning of the session, to report ours at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.records: list[warnings.WarningMessage] = []

    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        self.records.append(warning_message)

    def found(self) -> list[Deprecation]:
        roots = [self.config.rootpath / name for name in self.config.getini("deprecation_roots")]
        return ours(self.records, roots)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.found() and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        found = self.found()
        if not found:
            return
        terminalreporter.section("deprecated calls in our code (they fail the run)", sep="=", red=True)
        for deprecation in found:
            terminalreporter.line(str(deprecation), red=True)
        terminalreporter.line(
            "Each is a call of ours that a dependency has deprecated: move it to the new API "
            "(the lock keeps a fresh install on the versions that passed; see README, 'The lock')."
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Collector(config), "modgate-deprecations")
