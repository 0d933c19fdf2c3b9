"""A scorer that returns NaN holds the output through the real gateway, and the held output is recorded
for review on both database backends (PostgreSQL's JSONB refuses NaN, so no NaN may reach the row)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationOutput
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import NON_FINITE_SCORE, PRESETS
from moderation.scorers.profanity import ProfanityScorer
from moderation.types import ScoreResult
from tests.integration.conftest import PROMPT, gateway_components
from tests.integration.gateway_harness import ServerThread
from tests.support.pg import postgres_server


class NanScorer:
    """A model that broke on its input: NaN for every text."""

    name = "broken-model"
    version = "1"

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        return [ScoreResult(scores={"toxicity": float("nan"), "insult": 0.01}) for _ in texts]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('nan') / 'modgate.db'}"
        migrate.upgrade(url)
        yield url
        return
    servers = postgres_server()
    pg = next(servers)
    url = pg.url_for(pg.create())
    migrate.upgrade(url)
    yield url
    next(servers, None)  # drops the database


@pytest.fixture(scope="module")
def nan_gateway(generator: Generator, database_url: str) -> Iterator[ServerThread]:
    engine = make_engine(database_url)
    moderator = Moderator(
        [ProfanityScorer(), NanScorer()], PRESETS, default_policy="default", masker=Masker()
    )
    server = ServerThread(gateway_components(generator, moderator, engine)).start()
    yield server
    server.stop(grace=1)
    engine.dispose()


def test_a_nan_score_holds_and_the_output_is_recorded(nan_gateway: ServerThread, database_url: str) -> None:
    with GatewayClient(nan_gateway.address) as client:
        response = client.generate(PROMPT, max_new_tokens=8, seed=3)
        (out,) = response.outputs
        assert action_name(out.moderation.action) == "HELD"
        assert out.text == "" and out.ticket.startswith("tkt_")
        assert NON_FINITE_SCORE in {r.category for r in out.moderation.reasons}
        assert "toxicity" not in out.moderation.scores
        assert all(math.isfinite(v) for v in out.moderation.scores.values())
        final = list(client.generate_stream(PROMPT, max_new_tokens=8, seed=3))[-1].final
        assert action_name(final.moderation.action) == "HELD" and final.ticket
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(GenerationOutput).where(GenerationOutput.ticket.in_([out.ticket, final.ticket]))
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 2
    for row in rows:
        assert row.generated_text  # kept for the reviewer
        assert row.released_text is None
        assert "toxicity" not in row.scores
        (reason,) = [r for r in row.reasons if r["category"] == NON_FINITE_SCORE]
        assert reason["scorer"] == "broken-model" and reason["action"] == "hold"
