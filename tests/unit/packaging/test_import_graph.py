"""Imports go one way. The moderation library's modules import each other in one direction only
(type-only imports included): a cycle means two modules that cannot be read, changed or tested apart.
And the gateway's layers import downwards only: nothing below the gRPC and HTTP edges imports an edge."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def import_graph(package: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith(package)}
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of module names (first repeated at the end), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done or node not in graph:
            return None
        for dep in sorted(graph[node]):
            found = visit(dep, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_moderation_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph("moderation"))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def imports_of(package: str) -> dict[str, set[str]]:
    """Every module under `package` (a folder) -> the absolute module names it imports (type-only too)."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        found[path.relative_to(ROOT).as_posix()] = names
    return found


BELOW_THE_EDGES = (
    "gateway/pipeline",
    "gateway/ops",
    "gateway/review",
    "gateway/audit",
    "gateway/webhooks",
    "gateway/storage",
    "gateway/generation",
    "gateway/policies",
    "gateway/wordlists",
)
EDGES = ("gateway.rpc", "gateway.web", "gateway.api", "grpc", "starlette")
# The health check is a gRPC client by purpose: it asks a running gateway's health service.
GRPC_CLIENTS = {"gateway/ops/healthcheck.py"}


def _reaches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_layers_below_the_edges_import_no_edge() -> None:
    """The folders tell a request's path only if it holds: the pipeline, the domain and operations never
    reach up into the gRPC or HTTP edge (an edge translates; the rules live below it)."""
    offenders = [
        f"{path} imports {name}"
        for package in BELOW_THE_EDGES
        for path, names in sorted(imports_of(package).items())
        if path not in GRPC_CLIENTS
        for name in sorted(names)
        if _reaches(name, EDGES)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_moderation_library_knows_no_gateway() -> None:
    offenders = [
        f"{path} imports {name}"
        for path, names in sorted(imports_of("moderation").items())
        for name in sorted(names)
        if _reaches(name, ("gateway", "grpc", "sqlalchemy", "starlette"))
    ]
    assert not offenders, "\n".join(offenders)


def test_the_layer_check_sees_an_edge_import() -> None:
    assert _reaches("gateway.rpc.auth", EDGES) and _reaches("grpc", EDGES)
    assert not _reaches("gateway.webhooks.outbox", EDGES), "gateway.web is not a prefix of gateway.webhooks"
