"""The moderation micro-batcher: concurrent requests share one `moderate()` call per policy, each gets
exactly its own decisions, a lone request is not delayed, and errors never release anything."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence

import pytest

from gateway.generation.worker import Worker
from gateway.pipeline.moderation_batching import ModerationBatcher
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import PRESETS
from moderation.testing import KeywordScorer
from moderation.types import Action, ScoreResult


class SlowKeywords(KeywordScorer):
    """Records calls like KeywordScorer; takes `delay` seconds per call (a busy moderation worker)."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__({"toxicity": ["idiot"]}, name="kw")
        self.delay = delay
        self.fail = fail

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("scorer down")
        return super().score(texts)


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker("moderation-test", max_queue=8)
    yield w
    w.shutdown()


def batcher_for(scorer: KeywordScorer, worker: Worker) -> ModerationBatcher:
    moderator = Moderator([scorer], PRESETS, default_policy="default", masker=Masker())
    return ModerationBatcher(moderator, worker)


async def test_concurrent_requests_share_one_call_and_get_their_own_decisions(worker: Worker) -> None:
    scorer = SlowKeywords()
    batcher = batcher_for(scorer, worker)
    requests = [["a nice day", "you idiot"], ["hello"], ["idiot again", "fine", "ok"]]
    results = await asyncio.gather(*(batcher.moderate(texts, policy=None) for texts in requests))
    assert scorer.calls == [[t for texts in requests for t in texts]]  # one round for all three
    assert [[d.original_text for d in r] for r in results] == requests
    assert [[d.action for d in r] for r in results] == [
        [Action.RELEASE, Action.HOLD],
        [Action.RELEASE],
        [Action.HOLD, Action.RELEASE, Action.RELEASE],
    ]


async def test_each_policy_gets_its_own_call(worker: Worker) -> None:
    scorer = SlowKeywords()
    batcher = batcher_for(scorer, worker)
    strict, default = await asyncio.gather(
        batcher.moderate(["you idiot"], policy="strict"), batcher.moderate(["you idiot"], policy=None)
    )
    assert len(scorer.calls) == 2 and batcher.rounds == 2
    assert strict[0].policy_name == "strict" and default[0].policy_name == "default"


async def test_requests_arriving_while_the_worker_is_busy_wait_for_one_round(worker: Worker) -> None:
    scorer = SlowKeywords(delay=0.2)
    batcher = batcher_for(scorer, worker)
    started = time.monotonic()
    first = asyncio.ensure_future(batcher.moderate(["first"], policy=None))
    await asyncio.sleep(0.05)  # the first round is running now
    later = [asyncio.ensure_future(batcher.moderate([f"later {i}"], policy=None)) for i in range(3)]
    await asyncio.gather(first, *later)
    assert scorer.calls == [["first"], ["later 0", "later 1", "later 2"]]
    assert time.monotonic() - started < 0.6  # two rounds, not four calls


async def test_a_lone_request_is_not_delayed(worker: Worker) -> None:
    scorer = SlowKeywords()
    batcher = batcher_for(scorer, worker)
    started = time.monotonic()
    (decision,) = await batcher.moderate(["hello"], policy=None)
    assert decision.action is Action.RELEASE and time.monotonic() - started < 0.05


async def test_a_scorer_error_fails_every_request_of_the_round(worker: Worker) -> None:
    batcher = batcher_for(SlowKeywords(fail=True), worker)
    results = await asyncio.gather(
        batcher.moderate(["a"], policy=None), batcher.moderate(["b"], policy=None), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_a_cancelled_caller_does_not_disturb_the_others(worker: Worker) -> None:
    scorer = SlowKeywords(delay=0.1)
    batcher = batcher_for(scorer, worker)
    busy = asyncio.ensure_future(batcher.moderate(["busy"], policy=None))
    await asyncio.sleep(0.02)
    gone = asyncio.ensure_future(batcher.moderate(["gone"], policy=None))
    kept = asyncio.ensure_future(batcher.moderate(["kept"], policy=None))
    await asyncio.sleep(0)
    gone.cancel()
    (decision,) = await kept
    await busy
    assert decision.original_text == "kept" and scorer.calls == [["busy"], ["kept"]]


async def test_calls_pinned_to_different_moderators_share_no_round(worker: Worker) -> None:
    """A policy change swaps the moderator while calls are in flight: each call is decided by the one it
    pinned when it started, never by the newer one that a later call brought into the same round."""
    scorer = SlowKeywords()
    old = Moderator([scorer], PRESETS, default_policy="default", masker=Masker())
    new = old.with_policies({**PRESETS, "default": PRESETS["strict"]})
    batcher = ModerationBatcher(old, worker)
    before, after = await asyncio.gather(
        batcher.moderate(["you idiot"], policy=None, moderator=old),
        batcher.moderate(["you idiot"], policy=None, moderator=new),
    )
    assert batcher.rounds == 2
    assert before[0].policy_version == PRESETS["default"].version
    assert after[0].policy_version == PRESETS["strict"].version
