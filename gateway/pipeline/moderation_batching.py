"""Moderates the outputs of concurrent requests together: one `Moderator.moderate` call per policy.

Why: rows that finish at the same decoding step reach moderation together, and one call on 16 texts
scores them faster than 16 calls (measured in the gateway benchmark: 1.8x per text for BERT-base fp32
on 2 CPU cores, 1.2x for int8, 6x on an H100; see docs/benchmarks.md).

How, without adding latency: there is no timer. Texts wait only while the moderation worker is busy
with the previous round (or for one event-loop turn, so that requests woken by the same finished step
join); an idle gateway moderates a lone request at once. Each request still gets exactly its own
decisions, in order. A scorer error fails every request of its round (never fail open).

Idle cores: the moderation worker runs on one core (torch's threads, gateway/generation/threads.py), so
that it never takes the decoder's. But when the decoder has nothing to do (no running rows, none waiting:
typically the moment a batch's rows all finished and their outputs wait for moderation), the other cores
would sit idle while one core scores the whole round. So a round of more than MIN_CHUNK texts is cut
into chunks: the worker scores them one after another, and `helpers` (single-thread workers, one per
other core) take chunks too, but only while the decoder is idle, checked at every chunk handed out.
Measured on host D (2 cores): 32 texts of BERT-base 1.92 s on two cores against 3.63 s on one
(docs/benchmarks.md, round 4). A helper that started a chunk finishes it even if a request arrives
meanwhile; chunks are small (at most MAX_CHUNK texts) so that this overlap is short. Each text gets
the decision it would get in one call (scores are per text; padding moves them by fp32 rounding only,
as any batch composition does).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.generation.worker import Worker
from gateway.policies.live import LiveModerator, current_moderator
from moderation.moderator import Moderator
from moderation.types import Decision

__all__ = ["ModerationBatcher"]


@dataclass(eq=False)
class _Waiting:
    texts: list[str]
    policy: str | None
    future: asyncio.Future[list[Decision]]
    moderator: Moderator


class ModerationBatcher:
    def __init__(
        self,
        moderator: Moderator | LiveModerator,
        worker: Worker,
        *,
        max_texts: int = 64,
        helpers: Worker | None = None,
        decoder_idle: Callable[[], bool] | None = None,
    ) -> None:
        """`worker` runs the blocking `moderate` calls (the server's moderation worker); a round takes at
        most `max_texts` texts (more wait for the next round). `helpers` (single-thread workers, one per
        other core) take parts of a round while `decoder_idle()` says the decoder has nothing to do."""
        if (helpers is None) != (decoder_idle is None):
            raise ValueError("helpers and decoder_idle go together")
        self._moderator = moderator
        self._worker = worker
        self._max_texts = max_texts
        self._helpers = helpers
        self._decoder_idle = decoder_idle
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rounds = 0  # rounds moderated (tests and benchmarks compare it with requests)
        self.helper_chunks = 0  # chunks of rounds scored by a helper, on a core the decoder left idle

    async def moderate(
        self, texts: Sequence[str], *, policy: str | None, moderator: Moderator | None = None
    ) -> list[Decision]:
        """The decisions for `texts` under `policy`, as `Moderator.moderate` gives them. `moderator`: the
        one the call pinned (default: the current one); calls pinned to different ones share no round."""
        chosen = moderator if moderator is not None else current_moderator(self._moderator)
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        if loop is not self._loop or not texts:  # another event loop: no sharing across loops
            return await self._worker.run(threading.Event(), chosen.moderate, texts, policy=policy)
        future: asyncio.Future[list[Decision]] = loop.create_future()
        self._waiting.append(_Waiting(list(texts), policy, future, chosen))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # requests resumed by the same finished step join this round
            taken: list[_Waiting] = []
            size = 0
            while self._waiting and (not taken or size + len(self._waiting[0].texts) <= self._max_texts):
                item = self._waiting.pop(0)
                if not item.future.done():  # a caller cancelled while waiting needs nothing
                    taken.append(item)
                    size += len(item.texts)
            by_policy: dict[tuple[Moderator, str | None], list[_Waiting]] = {}
            for item in taken:
                by_policy.setdefault((item.moderator, item.policy), []).append(item)
            for (moderator, policy), items in by_policy.items():
                await self._round(moderator, policy, items)

    async def _round(self, moderator: Moderator, policy: str | None, items: list[_Waiting]) -> None:
        texts = [t for item in items for t in item.texts]
        self.rounds += 1
        try:
            decisions = await self._moderate(moderator, policy, texts)
        except Exception as exc:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        start = 0
        for item in items:
            part = decisions[start : start + len(item.texts)]
            start += len(item.texts)
            if not item.future.done():
                item.future.set_result(part)

    async def _moderate(self, moderator: Moderator, policy: str | None, texts: list[str]) -> list[Decision]:
        """The decisions for `texts`, in order: one `moderate` call on the worker, or, with helpers, one
        per chunk: the worker takes chunks one after another, and a helper takes the next chunk only
        while the decoder is idle (checked each time a chunk is handed out, so helpers join a round
        when the decoder stops and leave it when the decoder starts again)."""
        if self._helpers is None or self._decoder_idle is None or len(texts) <= MIN_CHUNK:
            return await self._worker.run(threading.Event(), moderator.moderate, texts, policy=policy)
        chunks = _chunks(texts, workers=1 + self._helpers.threads)
        results: list[list[Decision]] = [[] for _ in chunks]
        queue = collections.deque(range(len(chunks)))
        running: dict[asyncio.Future[list[Decision]], tuple[int, bool]] = {}  # -> (chunk, on a helper)
        helping = 0
        error: BaseException | None = None

        def start(worker: Worker, helper: bool) -> None:
            index = queue.popleft()
            run = worker.run(threading.Event(), moderator.moderate, chunks[index], policy=policy)
            running[asyncio.ensure_future(run)] = (index, helper)

        try:
            while running or (queue and error is None):
                if error is None:
                    if queue and not any(not helper for _, helper in running.values()):
                        start(self._worker, False)
                    while queue and helping < self._helpers.threads and self._decoder_idle():
                        start(self._helpers, True)
                        helping += 1
                        self.helper_chunks += 1
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    index, helper = running.pop(future)
                    helping -= helper
                    if future.exception() is not None:
                        error = error or future.exception()
                    else:
                        results[index] = future.result()
        finally:
            for future in running:  # only when this round is cancelled: its chunks' callers are gone
                future.cancel()
        if error is not None:
            raise error
        return [d for part in results for d in part]


# Chunks of a round shared with helpers: at least MIN_CHUNK texts (one call on 4 texts scores about as
# fast per text as one on 16; fewer lose the batching gain) and at most MAX_CHUNK, so that a helper
# finishes its chunk soon after the decoder starts again (8 BERT-base texts: ~0.9 s on one core).
MIN_CHUNK = 4
MAX_CHUNK = 8


def _chunks(texts: list[str], *, workers: int) -> list[list[str]]:
    """Contiguous chunks of near-equal size: about two per worker, within [MIN_CHUNK, MAX_CHUNK]."""
    size = min(MAX_CHUNK, max(MIN_CHUNK, -(-len(texts) // (2 * workers))))
    count = -(-len(texts) // size)
    per, extra = divmod(len(texts), count)
    bounds = [i * per + min(i, extra) for i in range(count + 1)]
    return [texts[a:b] for a, b in itertools.pairwise(bounds)]
