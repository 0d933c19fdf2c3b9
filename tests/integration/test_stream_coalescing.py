"""GenerateStream with a moderator slower than generation: text that arrives while a round is being
scored is scored together in the next round, so the number of scoring calls follows the moderator's
speed, not the number of words (one call per word re-scores the whole text each time: O(words^2))."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from gateway.client import GatewayClient
from gateway.generation.generator import Generator
from gateway.storage.engine import make_engine
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import Policy, Thresholds
from moderation.types import ScoreResult
from tests.integration.conftest import PROMPT, gateway_components
from tests.integration.gateway_harness import ServerThread

SCORE_SECONDS = 0.1
TOKENS = 96


class SlowScorer:
    """Scores nothing as toxic; takes SCORE_SECONDS per call (like detoxify on a CPU) and counts calls."""

    name = "slow"
    version = "slow-1"

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        time.sleep(SCORE_SECONDS)
        with self._lock:
            self.calls += 1
        return [ScoreResult(scores={"toxicity": 0.0}) for _ in texts]


@pytest.fixture(scope="module")
def slow_gateway(generator: Generator, db_url: str) -> Iterator[tuple[ServerThread, SlowScorer]]:
    scorer = SlowScorer()
    policy = Policy(name="slow", thresholds={"toxicity": Thresholds(hold=0.5)})
    moderator = Moderator([scorer], {"slow": policy}, default_policy="slow", masker=Masker())
    engine = make_engine(db_url)
    components = gateway_components(generator, moderator, engine)
    server = ServerThread(components).start()
    yield server, scorer
    server.stop(grace=1)
    engine.dispose()


def test_slow_moderator_is_called_per_round_not_per_word(
    slow_gateway: tuple[ServerThread, SlowScorer],
) -> None:
    server, scorer = slow_gateway
    with GatewayClient(server.address, timeout=60) as client:
        unary = client.generate(PROMPT, max_new_tokens=TOKENS, min_new_tokens=TOKENS, seed=5).outputs[0]
        scorer.calls = 0
        messages = list(client.generate_stream(PROMPT, max_new_tokens=TOKENS, min_new_tokens=TOKENS, seed=5))
    streamed = "".join(m.text for m in messages if m.WhichOneof("event") == "text")
    assert streamed == unary.text, "coalescing changes when text is scored, never what is sent"
    words = len(unary.text.split())
    assert words >= 20, f"the demo model should produce many words: {unary.text!r}"
    # Without coalescing: about one call per word. With it: about one per SCORE_SECONDS of generation.
    assert scorer.calls <= words // 2, (scorer.calls, words)
    assert sum(1 for m in messages if m.WhichOneof("event") == "text") >= 2, "still released in chunks"
