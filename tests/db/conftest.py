"""Database fixtures: fresh, migrated databases on SQLite and PostgreSQL for every test.

The schema always comes from ``alembic upgrade head`` (never ``create_all``). To stay fast, each
backend is migrated once per run: SQLite into a template file that every test copies; PostgreSQL into a
template database, from which one database for the run is created and emptied (TRUNCATE) before each
test (tests run one at a time; the migration tests get databases of their own). PostgreSQL databases
are called ``modgate_test_<random>`` and dropped at the end; the PostgreSQL cases are skipped, with
the reason shown, only when no server answers at ``MODGATE_TEST_PG_URL``.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.review import create_reviewer
from gateway.storage import Base, make_engine, make_session_factory, migrate
from gateway.storage.models import GenerationOutput, Reviewer, ReviewerRole, ReviewItem
from tests.support.audit_tamper import tampering
from tests.support.held import hold_output
from tests.support.pg import PostgresServer, postgres_server

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from postgres_server()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """A PostgreSQL database at head, used only as a template (no connections stay open on it)."""
    name = pg_server.create()
    migrate.upgrade(pg_server.url_for(name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    pg: PostgresServer = request.getfixturevalue("pg_server")
    name = pg.create()
    yield pg.url_for(name)
    pg.drop(name)


@pytest.fixture(scope="session")
def pg_shared_url(pg_server: PostgresServer, pg_template: str) -> str:
    """One PostgreSQL database at head for the whole run; :func:`db_url` empties it before each test.

    Emptying (one TRUNCATE) costs milliseconds; creating and dropping a database per test cost up to a
    second each on a busy 2-core machine.
    """
    return pg_server.url_for(pg_server.create(template=pg_template))


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at ``alembic upgrade head`` with no rows, private to this test while it runs."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "modgate.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_shared_url")
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            # The test role is a superuser: "replica" switches off the audit log's append-only trigger.
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine) -> sessionmaker[Session]:
    """The session factory: ``with db() as s, s.begin(): ...`` as the gateway does."""
    return make_session_factory(engine)


@pytest.fixture
def add_reviewer_to() -> Callable[..., Reviewer]:
    """Commit a reviewer through a given session factory and return it (detached, loaded)."""
    counter = iter(range(1, 10_000))

    def make(
        factory: sessionmaker[Session],
        role: ReviewerRole = ReviewerRole.REVIEWER,
        username: str | None = None,
    ) -> Reviewer:
        name = username or f"{role.value}{next(counter)}"
        with factory() as s, s.begin():
            return create_reviewer(session=s, username=name, password="correct horse battery", role=role)

    return make


@pytest.fixture
def add_reviewer(
    db: sessionmaker[Session], add_reviewer_to: Callable[..., Reviewer]
) -> Callable[..., Reviewer]:
    """Commit a reviewer in the test's database and return it."""
    return functools.partial(add_reviewer_to, db)


@pytest.fixture
def add_held(db: sessionmaker[Session]) -> Callable[..., ReviewItem]:
    """Commit a request with one held output and its review item; returns the item (detached)."""
    counter = iter(range(1, 10_000))

    def make(
        *,
        priority: float | None = None,
        escalated: bool = False,
        tenant: str = "acme",
        text: str = "the generated text",
        created_at: datetime | None = None,
    ) -> ReviewItem:
        n = next(counter)
        with db() as s, s.begin():
            item = hold_output(
                s,
                request_id=f"req-{n}",
                tenant=tenant,
                model_id="gpt-neo-125M",
                text=text,
                prompt="a prompt",
                escalated=escalated,
                priority=priority,
                scores={"toxicity": 0.7},
            )
            if created_at is not None:
                item.created_at = created_at
            s.flush()
            s.refresh(item, ["output"])
            return item

    return make


@pytest.fixture
def output_of(db: sessionmaker[Session]) -> Callable[[ReviewItem], GenerationOutput]:
    """Reads the output row behind an item as the database has it now."""

    def read(item: ReviewItem) -> GenerationOutput:
        with db() as s:
            output = s.get(GenerationOutput, item.output_id)
            assert output is not None
            return output

    return read


@pytest.fixture
def exec_sql(engine: Engine) -> Callable[..., None]:
    """Runs raw SQL in its own transaction (to tamper with rows as an attacker with db access would:
    the audit log's append-only triggers are switched off for it, as a table owner can)."""

    def run(sql: str, **params: Any) -> None:
        with tampering(engine) as conn:
            conn.execute(text(sql), params)

    return run
