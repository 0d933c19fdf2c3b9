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
from gateway.recording import Recorder
from gateway.server import Components
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from moderation.config import build_moderator, offline_demo_config
from tests.integration.gateway_harness import ServerThread
from tests.pg import PostgresServer, postgres_server

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


@pytest.fixture(scope="module")
def pg_gateway(
    generator: Generator, pg_database: tuple[str, Callable[[str], None]]
) -> Iterator[ServerThread]:
    url, _ = pg_database
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    server = ServerThread(
        Components(
            settings=Settings(model=generator.model_id, database_url=url, insecure_no_auth=True),
            generator=generator,
            moderator=build_moderator(offline_demo_config()),
            engine=engine,
            sessions=sessions,
            recorder=Recorder(sessions),
        )
    ).start()
    yield server
    server.stop(grace=1)
    engine.dispose()


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
