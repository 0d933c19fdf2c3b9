"""The database unreachable for a while: clear UNAVAILABLE errors, then recovery without a restart.

Runs against the real PostgreSQL server: the test database stops accepting connections and its existing
connections are terminated, as when the database host goes away; then it comes back."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.generation.generator import Generator
from gateway.pipeline.recording import Recorder
from gateway.server import Components
from gateway.storage import migrate
from gateway.storage.apikeys import create_key
from gateway.storage.engine import make_engine, make_session_factory
from moderation.config import build_moderator, offline_demo_config
from tests.integration.gateway_harness import ServerThread
from tests.support.pg import PostgresServer, postgres_server

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    yield from postgres_server()


@pytest.fixture(scope="module")
def pg_database(pg: PostgresServer) -> Iterator[tuple[str, Callable[[str], None]]]:
    name = pg.create()

    def admin_sql(sql: str) -> None:
        pg.sql(sql.format(db=name))

    url = pg.url_for(name)
    migrate.upgrade(url)
    yield url, admin_sql
    admin_sql('ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')


def _start(generator: Generator, url: str, *, auth: bool) -> ServerThread:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    return ServerThread(
        Components(
            settings=Settings(model=generator.model_id, database_url=url, insecure_no_auth=not auth),
            generator=generator,
            moderator=build_moderator(offline_demo_config()),
            engine=engine,
            sessions=sessions,
            recorder=Recorder(sessions),
        )
    ).start()


@pytest.fixture(scope="module")
def pg_gateway(
    generator: Generator, pg_database: tuple[str, Callable[[str], None]]
) -> Iterator[ServerThread]:
    server = _start(generator, pg_database[0], auth=False)
    yield server
    server.stop(grace=1)
    server.components.engine.dispose()


@pytest.fixture(scope="module")
def pg_secured(
    generator: Generator, pg_database: tuple[str, Callable[[str], None]]
) -> Iterator[tuple[ServerThread, str]]:
    """A gateway with authentication on, and a valid key for it."""
    server = _start(generator, pg_database[0], auth=True)
    with server.components.sessions() as session, session.begin():
        _, secret = create_key(session=session, tenant="acme", name="app", scopes=["generate"])
    yield server, secret
    server.stop(grace=1)
    server.components.engine.dispose()


def test_unreachable_database_gives_unavailable_then_recovers(
    pg_gateway: ServerThread, pg_database: tuple[str, Callable[[str], None]]
) -> None:
    _, admin_sql = pg_database
    with GatewayClient(pg_gateway.address, timeout=30) as client:
        assert client.generate("The garden", max_new_tokens=3).outputs  # warm: pooled connections exist
        admin_sql('ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as info:
                client.generate("The garden", max_new_tokens=3)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == "the gateway's database is unavailable; retry later"
        admin_sql('ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        response = client.generate("The garden", max_new_tokens=3)  # same server process, no restart
        assert response.outputs and response.outputs[0].generated_tokens > 0


def test_key_lookup_with_the_database_down_is_unavailable_without_detail(
    pg_secured: tuple[ServerThread, str], pg_database: tuple[str, Callable[[str], None]]
) -> None:
    """The key lookup runs before the servicer: its database errors are mapped like the servicer's, not
    answered with UNKNOWN and the driver's message (host, database, SQL) to a caller not yet known."""
    server, secret = pg_secured
    _, admin_sql = pg_database
    with GatewayClient(server.address, timeout=30, api_key=secret) as client:
        assert client.generate("The garden", max_new_tokens=2).outputs
    admin_sql('ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
    admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
    try:
        for key in (secret, "mg_00000000_" + "x" * 43):  # a valid key, and an unknown one
            with (
                GatewayClient(server.address, timeout=30, api_key=key) as client,
                pytest.raises(grpc.RpcError) as info,
            ):
                client.generate("The garden", max_new_tokens=2)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == "the gateway's database is unavailable; retry later"
    finally:
        admin_sql('ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')


def test_a_failing_insert_logs_no_prompt_or_text(
    pg_gateway: ServerThread,
    pg_database: tuple[str, Callable[[str], None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLAlchemy puts bound parameters into exception text; the outputs insert binds the prompt and
    the generated (possibly withheld) text, and exceptions are logged."""
    url, _ = pg_database
    prompt = "Quixotic zebra prompt"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER refuse_outputs BEFORE INSERT ON generation_outputs "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"
        )
    try:
        with GatewayClient(pg_gateway.address, timeout=30) as client, pytest.raises(grpc.RpcError) as info:
            client.generate(prompt, max_new_tokens=4, seed=3, do_sample=False)
        assert info.value.code() == grpc.StatusCode.INTERNAL
        assert "refused" in caplog.text, "the failure itself is logged"
        assert prompt not in caplog.text and "zebra" not in caplog.text
        assert "[parameters" not in caplog.text
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_outputs ON generation_outputs; DROP FUNCTION refuse()")
        engine.dispose()
