"""What a request is inside the batcher, how it is answered, and the batcher's counters.

Why a module of its own: the batcher's worker thread and the asyncio side share these objects; keeping
them apart from the decoding loop (`batcher.py`) keeps each file about one thing. A `Job` is one
request (one prompt, `num_return_sequences` rows); its `deliver` settles the caller's future on the
caller's event loop, exactly once, from the worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import Cancelled
from gateway.generation.generator import GeneratedSequence
from gateway.generation.params import SamplingParams
from gateway.generation.sampling import RequestSampler, RowText

__all__ = [
    "BatcherStats",
    "Job",
    "Row",
    "TokenBudget",
    "admit",
    "cancelled",
    "deliverer",
    "params_key",
    "row_tokens",
]


@dataclass
class BatcherStats:
    """Counters for tests, benchmarks and logs (a snapshot; see `Batcher.stats`)."""

    requests: int = 0
    refused: int = 0
    cancelled: int = 0
    prefills: int = 0
    prefill_chunks: int = 0  # forward passes of prefills (more than `prefills` when chunked)
    joined_running: int = 0  # requests that joined a batch already decoding
    shared_prefills: int = 0  # requests whose prompt was prefilled once with another request's
    steps: int = 0
    tokens: int = 0
    max_rows: int = 0
    # Seconds in decoding steps: the forward pass, then choosing tokens and ending rows (processors,
    # sampling, stop checks). On a GPU the first includes only the launch; the second waits for it.
    forward_s: float = 0.0
    choose_s: float = 0.0
    rows_per_step: collections.Counter[int] = field(default_factory=collections.Counter)


@dataclass(eq=False)
class Job:
    """One request (one prompt, `num_return_sequences` rows), owned by the worker once admitted."""

    prompt: str
    params: SamplingParams
    cancel: threading.Event
    should_stop: Callable[[], bool]
    on_text: Callable[[str], None] | None
    deliver: Callable[[list[GeneratedSequence] | BaseException], None]
    prompt_ids: list[int] = field(default_factory=list)
    sampler: RequestSampler | None = None
    results: list[GeneratedSequence] = field(default_factory=list)
    live: int = 0  # rows still in the batch
    done: bool = False

    def stopped(self) -> bool:
        return self.cancel.is_set() or self.should_stop()


@dataclass(eq=False)
class Row:
    job: Job
    text: RowText


def deliverer(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[list[GeneratedSequence]]
) -> Callable[[list[GeneratedSequence] | BaseException], None]:
    """Settles `future` on its own loop from the worker thread (once; a closed loop is ignored)."""

    def settle(outcome: list[GeneratedSequence] | BaseException) -> None:
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def deliver(outcome: list[GeneratedSequence] | BaseException) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome)

    return deliver


def cancelled() -> Cancelled:
    return Cancelled("generation was stopped: the call was cancelled or its deadline passed")


def params_key(p: SamplingParams) -> tuple[object, ...]:
    return (p.do_sample, p.temperature, p.top_p, p.top_k, p.repetition_penalty)


def row_tokens(job: Job) -> int:
    """The most cache columns one of the job's rows can need: its prompt and every new token."""
    return len(job.prompt_ids) + job.params.max_new_tokens


@dataclass(frozen=True)
class TokenBudget:
    """The KV cache's bound for admission: rows x the widest row's `row_tokens` (rows are left-padded
    to the widest, and columns that are padding in every row are cut, so that product bounds the cache's
    columns) must stay within `max_tokens`. `rows` and `widest` describe the running batch."""

    max_tokens: int
    rows: int = 0
    widest: int = 0

    def fits(self, rows: int, tokens: int) -> bool:
        return (self.rows + rows) * max(self.widest, tokens) <= self.max_tokens

    def plus(self, rows: int, tokens: int) -> TokenBudget:
        return TokenBudget(self.max_tokens, self.rows + rows, max(self.widest, tokens))


def admit(
    queue: collections.deque[Job],
    *,
    free: int,
    batch_empty: bool,
    key: tuple[object, ...] | None,
    group_by_params: bool,
    budget: TokenBudget | None = None,
) -> tuple[list[Job], list[Job]]:
    """Takes out of `queue` (in place) the jobs to start now and those whose callers gave up; returns
    (to start, gave up). Oldest first, as many as fit in `free` rows and in the token `budget`; a job
    larger than either runs when the batch is empty (alone). First come, first served: a job that does
    not fit is not overtaken, except when grouping by sampling knobs (`key`: the running batch's), where
    only equal knobs join."""
    taken: list[Job] = []
    gave_up: list[Job] = []
    kept: collections.deque[Job] = collections.deque()
    while queue:
        job = queue.popleft()
        if job.stopped():
            gave_up.append(job)
            continue
        rows = job.params.num_return_sequences
        tokens = row_tokens(job)
        within = rows <= free and (budget is None or budget.fits(rows, tokens))
        fits = within or (batch_empty and not taken)
        if group_by_params:
            job_key = params_key(job.params)
            key = job_key if key is None else key
            fits = fits and job_key == key
        if fits:
            taken.append(job)
            free -= rows
            budget = None if budget is None else budget.plus(rows, tokens)
            continue
        kept.append(job)
        if not group_by_params:
            break
    kept.extend(queue)
    queue.clear()
    queue.extend(kept)
    return taken, gave_up
