"""Generated text with NUL never reaches a PostgreSQL insert (which refuses it: INTERNAL, output lost).

The demo model is biased towards its NUL token. With the decoders' suppression (the normal case) no NUL
is generated; with the suppression list emptied (a vocabulary whose NUL token was not found), the
pipeline's backstop stores U+FFFD instead, and the call still succeeds on every path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient
from gateway.config import Settings
from gateway.generation.generator import Generator
from gateway.pipeline.recording import Recorder
from gateway.server import Components
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import GenerationOutput, GenerationRequest, RequestStatus
from moderation.config import build_moderator, offline_demo_config
from tests.integration.gateway_harness import ServerThread
from tests.support.nul_model import nul_loving_model
from tests.support.pg import postgres_server

pytestmark = pytest.mark.postgres


def nul_loving_generator(model_dir: Path, *, suppress: bool) -> Generator:
    loaded = nul_loving_model(model_dir)
    if not suppress:
        loaded._nul_ids = ()
    return Generator(loaded)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    for pg in postgres_server():
        url = pg.url_for(pg.create())
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module", params=[True, False], ids=["suppressed", "backstop"])
def server(request: pytest.FixtureRequest, demo_model_dir: Path, pg_url: str) -> Iterator[ServerThread]:
    generator = nul_loving_generator(demo_model_dir, suppress=request.param)
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    server = ServerThread(
        Components(
            settings=Settings(model=generator.model_id, database_url=pg_url, insecure_no_auth=True),
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


def stored(pg_url: str, request_id: str) -> tuple[RequestStatus, list[str]]:
    engine = make_engine(pg_url)
    with Session(engine) as s:
        req = s.scalars(select(GenerationRequest).where(GenerationRequest.request_id == request_id)).one()
        of_request = GenerationOutput.generation_request_id == req.id
        texts = list(s.scalars(select(GenerationOutput.generated_text).where(of_request)))
        status = req.status
    engine.dispose()
    return status, texts


def test_unary_and_stream_outputs_are_recorded_without_nul(server: ServerThread, pg_url: str) -> None:
    with GatewayClient(server.address, timeout=60) as client:
        unary = client.generate("The meaning of life is", max_new_tokens=8, do_sample=False)
        stream = list(client.generate_stream("The meaning of life is", max_new_tokens=8, seed=2))
    for request_id in (unary.request_id, stream[0].start.request_id):
        status, texts = stored(pg_url, request_id)
        assert status == RequestStatus.COMPLETED
        assert texts and all(text and "\x00" not in text for text in texts)
    assert "\x00" not in str(unary) and all("\x00" not in m.text for m in stream)
