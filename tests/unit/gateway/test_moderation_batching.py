"""The moderation micro-batcher: concurrent requests share one `moderate()` call per policy, each gets
exactly its own decisions, a lone request is not delayed, and errors never release anything."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence

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


class Meeting(KeywordScorer):
    """A scorer whose first `parties` calls must meet (the barrier breaks after `timeout`), which only
    succeeds when they run at the same time."""

    def __init__(self, parties: int = 2, timeout: float = 10.0) -> None:
        super().__init__({"toxicity": ["idiot"]}, name="kw")
        self.meet = threading.Barrier(parties, timeout=timeout)
        self.parties = parties

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        if len(self.calls) < self.parties:
            self.meet.wait()
        return super().score(texts)


class Threads(KeywordScorer):
    """Records which worker thread scored each call; `on_call(n)` runs at the start of the n-th call."""

    def __init__(self, on_call: Callable[[int], None] = lambda n: None) -> None:
        super().__init__({"toxicity": ["idiot"]}, name="kw")
        self.threads: list[str] = []
        self.on_call = on_call
        self.lock = threading.Lock()

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        with self.lock:
            self.on_call(len(self.threads))
            self.threads.append(threading.current_thread().name.rsplit("_", 1)[0])
        time.sleep(0.05)
        return super().score(texts)


@pytest.fixture
def helpers() -> Iterator[Worker]:
    w = Worker("moderation-idle-test", max_queue=8, threads=1)
    yield w
    w.shutdown()


def split_batcher(
    scorer: KeywordScorer, worker: Worker, helpers: Worker, idle: list[bool]
) -> ModerationBatcher:
    moderator = Moderator([scorer], PRESETS, default_policy="default", masker=Masker())
    return ModerationBatcher(moderator, worker, helpers=helpers, decoder_idle=lambda: idle[0])


SIXTEEN = [f"text {i}" if i % 3 else f"idiot {i}" for i in range(16)]


async def test_while_the_decoder_is_idle_a_helper_scores_chunks_of_the_round_at_the_same_time(
    worker: Worker, helpers: Worker
) -> None:
    scorer = Meeting()  # the first two chunks must be scored at the same time, or the barrier breaks
    batcher = split_batcher(scorer, worker, helpers, [True])
    requests = [["a nice day", "you idiot"], ["hello"], ["idiot again", "fine"]]
    results = await asyncio.gather(*(batcher.moderate(texts, policy=None) for texts in requests))
    assert sorted(scorer.calls) == [["a nice day", "you idiot", "hello"], ["idiot again", "fine"]]
    assert (batcher.rounds, batcher.helper_chunks) == (1, 1)
    assert [[d.original_text for d in r] for r in results] == requests  # each its own, in order
    assert [[d.action for d in r] for r in results] == [
        [Action.RELEASE, Action.HOLD],
        [Action.RELEASE],
        [Action.HOLD, Action.RELEASE],
    ]


async def test_while_the_decoder_runs_the_worker_scores_every_chunk(worker: Worker, helpers: Worker) -> None:
    scorer = Threads()
    batcher = split_batcher(scorer, worker, helpers, [False])
    (decisions,) = await asyncio.gather(batcher.moderate(SIXTEEN, policy=None))
    assert [d.original_text for d in decisions] == SIXTEEN
    assert scorer.calls == [SIXTEEN[i : i + 4] for i in range(0, 16, 4)]  # four chunks of four
    assert set(scorer.threads) == {"moderation-test"} and batcher.helper_chunks == 0


async def test_a_helper_joins_when_the_decoder_stops(worker: Worker, helpers: Worker) -> None:
    idle = [False]

    def decoder_stops(call: int) -> None:
        idle[0] = True  # the decoder's last rows finished while the first chunk was scored

    scorer = Threads(decoder_stops)
    batcher = split_batcher(scorer, worker, helpers, idle)
    decisions = await batcher.moderate(SIXTEEN, policy=None)
    assert [d.original_text for d in decisions] == SIXTEEN
    assert [d.action for d in decisions] == [Action.HOLD if i % 3 == 0 else Action.RELEASE for i in range(16)]
    assert scorer.threads[0] == "moderation-test" and "moderation-idle-test" in scorer.threads[1:]
    assert batcher.helper_chunks >= 1


async def test_a_helper_leaves_when_the_decoder_starts(worker: Worker, helpers: Worker) -> None:
    idle = [True]

    def decoder_starts(call: int) -> None:
        if threading.current_thread().name.startswith("moderation-idle-test"):
            idle[0] = False  # a request arrived while the helper scored its first chunk

    scorer = Threads(decoder_starts)
    batcher = split_batcher(scorer, worker, helpers, idle)
    decisions = await batcher.moderate(SIXTEEN, policy=None)
    assert [d.original_text for d in decisions] == SIXTEEN
    assert scorer.threads.count("moderation-idle-test") == 1 == batcher.helper_chunks
    assert len(scorer.threads) == 4


async def test_a_round_of_few_texts_is_one_call(worker: Worker, helpers: Worker) -> None:
    scorer = SlowKeywords()
    batcher = split_batcher(scorer, worker, helpers, [True])
    await asyncio.gather(batcher.moderate(["a", "b"], policy=None), batcher.moderate(["c", "d"], policy=None))
    assert scorer.calls == [["a", "b", "c", "d"]] and batcher.helper_chunks == 0


async def test_a_failing_chunk_fails_every_request_of_the_round(worker: Worker, helpers: Worker) -> None:
    class FailsOnB(SlowKeywords):
        def score(self, texts: Sequence[str]) -> list[ScoreResult]:
            if "b" in texts:
                raise RuntimeError("scorer down")
            return super().score(texts)

    batcher = split_batcher(FailsOnB(), worker, helpers, [True])
    results = await asyncio.gather(
        batcher.moderate(["a", "x", "y"], policy=None),
        batcher.moderate(["b", "z", "w"], policy=None),
        return_exceptions=True,
    )
    assert batcher.helper_chunks == 1
    assert all(isinstance(r, RuntimeError) for r in results)  # "a" was scored, and still not released


def test_helpers_and_decoder_idle_go_together(worker: Worker) -> None:
    moderator = Moderator([SlowKeywords()], PRESETS, default_policy="default", masker=Masker())
    with pytest.raises(ValueError, match="go together"):
        ModerationBatcher(moderator, worker, helpers=worker)
