"""Dynamic batching: concurrent requests share forward passes of the model, in one worker thread.

Why: on a CPU (and far more on a GPU) one forward pass over 8 or 16 rows costs little more than over
one, so serving concurrent requests together multiplies throughput. How:

- Requests wait in a bounded queue (past `max_queue` waiting, RESOURCE_EXHAUSTED at once).
- One thread owns the model. When idle, it waits up to `max_wait_ms` for more requests, then prefills
  them together (LEFT padding, an attention mask, and position ids counted from the mask, because
  GPT-Neo would otherwise give a padded row shifted positions and different text).
- It then decodes one token per step for every row with its own loop on the model's forward and the
  KV cache (`DynamicCache`) rather than `model.generate`, so that rows can differ: each request keeps
  its own sampling parameters and seeded generator (`sampling.RequestSampler`); rows that finish (end
  of text, max_new_tokens, stop sequence) or whose caller gave up (cancelled, deadline) leave the batch
  at once, pruned from the ids, the mask and the cache; and requests that arrive meanwhile JOIN the
  running batch between steps (continuous batching), their fresh cache left-padded to the batch's.
- Columns that became padding in every row are cut from the mask and the cache, so a long request
  that left does not make the others pay for its length.
- Prompts that join a RUNNING batch are prefilled `prefill_chunk` columns at a time, one chunk per
  decoding step (`kv_batch.PendingPrefill`): a 2000-token prompt costs the running rows a slower step
  for a while instead of one stall of its whole prefill. No more requests are admitted meanwhile; if
  every caller of the prefill gives up, it is dropped at the next chunk. An idle batcher prefills in
  one pass (nobody waits on it).

The text a row produces does not depend on what else is in its batch (tested; padding changes fp32
logits only by rounding, ~1e-7). The worker's text is unmoderated: the servicer moderates it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from gateway.errors import ResourceExhausted, Unavailable
from gateway.generation.generator import GeneratedSequence, Generator
from gateway.generation.jobs import (
    BatcherStats,
    Job,
    Row,
    TokenBudget,
    admit,
    cancelled,
    deliverer,
    params_key,
    row_tokens,
)
from gateway.generation.kv_batch import BatchState, PendingPrefill
from gateway.generation.params import SamplingParams
from gateway.generation.sampling import RequestSampler, RowText

log = logging.getLogger(__name__)

__all__ = ["Batcher", "BatcherStats"]


class Batcher:
    """Groups concurrent generation requests into batches; one thread owns the model."""

    def __init__(
        self,
        generator: Generator,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        observe: Callable[[float], None] | None = None,
        observe_rows: Callable[[int], None] | None = None,
        group_by_params: bool = False,
        prefill_chunk: int = 256,
        torch_threads: int | None = None,
        threads_now: Callable[[], int] | None = None,
        max_batch_tokens: int = 0,
    ) -> None:
        """`observe` receives each request's seconds (queue wait + generation), `observe_rows` the rows
        of each decoding step (e.g. histograms).
        `group_by_params` admits into a running batch only requests with the same sampling knobs
        (the alternative to per-row processors, kept for the benchmark; see docs/benchmarks.md).
        `prefill_chunk`: prompt columns prefilled per decoding step while a batch runs (0: one pass).
        `torch_threads`: torch's intra-op threads for the worker thread (None: torch's default for a new
        thread); see `gateway/generation/threads.py` for why the server sets it. `threads_now`: asked
        before each pass over the batch, the thread count for it (`threads.CoreSharing`).
        `max_batch_tokens`: a request joins only while rows x the widest row's prompt + max_new_tokens
        stays within it (the KV cache's bound, `jobs.TokenBudget`); 0: rows only."""
        if max_batch_size < 1 or max_queue < 1 or min(max_wait_ms, prefill_chunk, max_batch_tokens) < 0:
            raise ValueError(
                "max_batch_size and max_queue must be >= 1, max_wait_ms, prefill_chunk and "
                "max_batch_tokens >= 0"
            )
        self._generator = generator
        self._lm = generator.loaded
        self._max_rows = max_batch_size
        self._max_tokens = max_batch_tokens
        self._max_wait = max_wait_ms / 1000.0
        self._max_queue = max_queue
        self._observe = observe
        self._observe_rows = observe_rows
        self._group_by_params = group_by_params
        self._prefill_chunk = prefill_chunk
        self._torch_threads = torch_threads
        self._threads_now = threads_now
        self._pending: tuple[list[Job], PendingPrefill] | None = None  # a chunked prefill under way
        self._cond = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._closing = False
        self._stats = BatcherStats()
        self._state = BatchState.empty()
        self._thread = threading.Thread(target=self._run, name="generation-batcher", daemon=True)
        self._thread.start()

    # ---- the asyncio side -------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Requests queued and not yet in the running batch."""
        return len(self._queue)

    @property
    def running_rows(self) -> int:
        return len(self._state.rows)

    def idle(self) -> bool:
        """No running rows, no prefill under way, nothing queued: the decoder's cores are free (read
        without the lock: a snapshot, for the moderation batcher's choice to use them)."""
        return not self._state.rows and self._pending is None and not self._queue

    def stats(self) -> BatcherStats:
        with self._cond:
            s = self._stats
            return BatcherStats(**{**s.__dict__, "rows_per_step": collections.Counter(s.rows_per_step)})

    async def generate(
        self, prompt: str, params: SamplingParams, *, cancel: threading.Event, should_stop: Callable[[], bool]
    ) -> list[GeneratedSequence]:
        """All `num_return_sequences` sequences of one prompt, in order. Raises Cancelled when
        `should_stop()` ended it, ResourceExhausted at once when the queue is full."""
        (sequences,) = await self._submit([prompt], params, cancel, should_stop, None)
        return sequences

    async def generate_many(
        self,
        prompts: Sequence[str],
        params: SamplingParams,
        *,
        cancel: threading.Event,
        should_stop: Callable[[], bool],
        prompt_ids: Sequence[list[int]] | None = None,
    ) -> list[list[GeneratedSequence]]:
        """`generate` for the prompts of one call, queued together so they can share a batch; the call
        takes one decision on the queue (all in or refused), like a single prompt. `prompt_ids`: the
        prompts already encoded (`Generator.encode`, off the event loop), else they are encoded here."""
        return await self._submit(list(prompts), params, cancel, should_stop, None, prompt_ids)

    async def generate_stream(
        self,
        prompt: str,
        params: SamplingParams,
        *,
        cancel: threading.Event,
        should_stop: Callable[[], bool],
        on_text: Callable[[str], None],
        prompt_ids: list[int] | None = None,
    ) -> GeneratedSequence:
        """One sequence; `on_text` gets its text in order, already cut at the first stop sequence, from
        the worker thread (hop to the event loop yourself). `prompt_ids`: as for `generate_many`."""
        if params.num_return_sequences != 1:
            raise ValueError("a stream carries one sequence")
        ids = None if prompt_ids is None else [prompt_ids]
        ((sequence,),) = await self._submit([prompt], params, cancel, should_stop, on_text, ids)
        return sequence

    async def _submit(
        self,
        prompts: list[str],
        params: SamplingParams,
        cancel: threading.Event,
        should_stop: Callable[[], bool],
        on_text: Callable[[str], None] | None,
        prompt_ids: Sequence[list[int]] | None = None,
    ) -> list[list[GeneratedSequence]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in prompts]
        jobs = [
            Job(prompt, params, cancel, should_stop, on_text, deliverer(loop, future))
            for prompt, future in zip(prompts, futures, strict=True)
        ]
        if prompt_ids is not None and len(prompt_ids) != len(jobs):
            raise ValueError("prompt_ids must hold one encoding per prompt")
        for i, job in enumerate(jobs):
            # The pipeline encodes off the event loop and passes the ids; direct callers (tests,
            # benchmarks) get them encoded here.
            given = prompt_ids[i] if prompt_ids is not None else None
            job.prompt_ids = list(given) if given is not None else self._generator.encode(job.prompt)
        with self._cond:
            if self._closing:
                raise Unavailable("the generation worker is shutting down; retry later")
            if len(self._queue) >= self._max_queue:
                self._stats.refused += 1
                raise ResourceExhausted(
                    f"the generation queue is full ({self._max_queue} requests waiting); retry later"
                )
            self._queue.extend(jobs)
            self._stats.requests += len(jobs)
            self._cond.notify_all()
        started = time.perf_counter()
        try:
            results = list(await asyncio.gather(*futures))
        except BaseException:
            cancel.set()  # the caller went away or a sibling prompt failed: the worker drops the rest
            for future in futures:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: a sibling's error is not "never retrieved"
            raise
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
        return results

    def shutdown(self) -> None:
        """Refuses new requests, fails queued ones (UNAVAILABLE), finishes the running batch (its rows
        leave at once if their callers were cancelled), then stops the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()

    # ---- the worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        threads = self._torch_threads
        if threads is not None:
            torch.set_num_threads(threads)  # per thread: this one's OpenMP team
        while True:
            jobs = self._take()
            if jobs is None:
                break
            if self._threads_now is not None and (wanted := self._threads_now()) != threads:
                torch.set_num_threads(wanted)
                threads = wanted
            try:
                with torch.inference_mode():
                    self._drop_stopped()
                    if jobs:
                        self._start_prefill(jobs)
                    if self._pending is not None:
                        self._advance_prefill()
                    if self._state.rows:
                        self._step()
            except Exception as exc:  # a model failure fails the batch, not the process
                log.exception("generation batch failed")
                for job in self._in_flight():
                    self._fail(job, exc)
                for job in jobs:
                    self._fail(job, exc)
                self._state, self._pending = BatchState.empty(), None
        for job in self._in_flight():
            self._fail(job, Unavailable("the generation worker stopped"))
        self._state, self._pending = BatchState.empty(), None

    def _in_flight(self) -> list[Job]:
        """Jobs in the running batch or in the prefill under way, once each."""
        jobs = {id(r.job): r.job for r in self._state.rows}
        if self._pending is not None:
            jobs.update((id(job), job) for job in self._pending[0])
        return list(jobs.values())

    def _take(self) -> list[Job] | None:
        """New jobs for the batch (empty while a batch runs and nothing waits); None to stop. An idle
        worker waits for the first request, then up to `max_wait_ms` for more to fill the batch."""
        with self._cond:
            if not self._state.rows and self._pending is None:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    self._close_queue()
                    return None
                deadline = time.monotonic() + self._max_wait
                while self._queued_rows() < self._max_rows and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if self._closing:
                self._close_queue()
                return [] if self._state.rows or self._pending is not None else None
            if self._pending is not None:  # its rows are taken: admit more once it has joined
                return []
            return self._admit()

    def _queued_rows(self) -> int:
        return sum(j.params.num_return_sequences for j in self._queue)

    def _close_queue(self) -> None:
        while self._queue:
            self._fail(self._queue.popleft(), Unavailable("the gateway is shutting down; retry later"))

    def _admit(self) -> list[Job]:
        """Jobs that fit in the batch's free rows (`jobs.admit`); jobs whose callers gave up while queued
        are answered here."""
        taken, gave_up = admit(
            self._queue,
            free=self._max_rows - len(self._state.rows),
            batch_empty=not self._state.rows,
            key=self._state.key,
            group_by_params=self._group_by_params,
            budget=self._budget(),
        )
        for job in gave_up:
            self._fail(job, cancelled(), count_cancel=True)
        if taken and self._state.rows:
            self._stats.joined_running += len(taken)
        return taken

    def _budget(self) -> TokenBudget | None:
        if not self._max_tokens:
            return None
        rows = self._state.rows
        return TokenBudget(self._max_tokens, len(rows), max((row_tokens(r.job) for r in rows), default=0))

    def _fail(self, job: Job, exc: BaseException, *, count_cancel: bool = False) -> None:
        if job.done:
            return
        job.done = True
        if count_cancel:
            with self._cond:
                self._stats.cancelled += 1
        job.deliver(exc)

    def _drop_stopped(self) -> None:
        """Rows whose caller was cancelled or whose deadline passed leave the batch before the step."""
        stopped = {id(r.job) for r in self._state.rows if r.job.stopped()}
        if not stopped:
            return
        keep = [i for i, r in enumerate(self._state.rows) if id(r.job) not in stopped]
        for row in self._state.rows:
            if id(row.job) in stopped:
                self._fail(row.job, cancelled(), count_cancel=True)
        self._state.select(keep)

    def _start_prefill(self, jobs: list[Job]) -> None:
        """Sets the new prompts up to be prefilled together (`_advance_prefill` runs them). A prompt is
        prefilled once for all its rows: the `num_return_sequences` of one request, and the requests
        with the very same prompt ids (their rows get copies of one cache; each row still samples with
        its own request's sampler)."""
        lm = self._lm
        tok = lm.tokenizer
        by_prompt: dict[tuple[int, ...], list[Job]] = {}
        for job in jobs:
            job.sampler = RequestSampler(
                job.params,
                eos_token_id=tok.eos_token_id,
                device=lm.device,
                suppress_token_ids=lm.nul_token_ids,
            )
            job.live = job.params.num_return_sequences
            by_prompt.setdefault(tuple(job.prompt_ids), []).append(job)
        pending = PendingPrefill.of(
            list(by_prompt),
            [sum(job.live for job in same) for same in by_prompt.values()],
            pad_token_id=tok.pad_token_id,
            device=lm.device,
        )
        with self._cond:
            self._stats.shared_prefills += len(jobs) - len(by_prompt)
        # Rows come out grouped by prompt, so the jobs are too (`_advance_prefill` gives rows in order).
        self._pending = ([job for same in by_prompt.values() for job in same], pending)

    def _advance_prefill(self) -> None:
        """Runs the next chunk of the pending prefill (all of it when no batch is running, or chunking is
        off); once done, samples the first tokens and merges the new rows into the batch."""
        assert self._pending is not None
        jobs, pending = self._pending
        if all(job.stopped() for job in jobs):  # every caller gave up: the rest of the prefill is waste
            self._pending = None
            for job in jobs:
                self._fail(job, cancelled(), count_cancel=True)
            return
        chunked = self._state.rows and self._prefill_chunk
        done = pending.advance(self._lm.model, self._prefill_chunk if chunked else pending.width)
        with self._cond:
            self._stats.prefill_chunks += 1
        if done is None:
            return
        self._pending = None
        fresh, logits = done
        fresh.rows = [Row(job, self._row_text(job, k)) for job in jobs for k in range(job.live)]
        fresh.key = params_key(jobs[0].params) if self._group_by_params else None
        with self._cond:
            self._stats.prefills += 1
        self._choose(fresh, logits)
        self._state.merge(fresh)

    def _row_text(self, job: Job, index: int) -> RowText:
        return RowText(
            self._lm.tokenizer,
            index=index,
            prompt_tokens=len(job.prompt_ids),
            stops=job.params.stop,
            on_text=job.on_text,
        )

    def _step(self) -> None:
        """One decoding step for every row, then the rows that ended leave."""
        state = self._state
        started = time.perf_counter()
        logits = state.step(self._lm.model)
        forward = time.perf_counter()
        rows = len(state.rows)
        # Counted before `_choose`, which delivers finished rows: whoever awaits one sees its steps.
        with self._cond:
            self._stats.steps += 1
            self._stats.rows_per_step[rows] += 1
            self._stats.max_rows = max(self._stats.max_rows, rows)
            self._stats.forward_s += forward - started
        if self._observe_rows is not None:
            self._observe_rows(rows)
        self._choose(state, logits)
        with self._cond:
            self._stats.choose_s += time.perf_counter() - forward

    def _choose(self, state: BatchState, logits: torch.Tensor) -> None:
        """Samples every row's next token with its request's sampler; rows that ended leave `state`."""
        eos = self._lm.tokenizer.eos_token_id
        groups: dict[int, list[int]] = {}
        for i, row in enumerate(state.rows):
            groups.setdefault(id(row.job), []).append(i)
        chosen = torch.empty(len(state.rows), dtype=torch.long, device=logits.device)
        leaving: set[int] = set()
        for indices in groups.values():
            job = state.rows[indices[0]].job
            assert job.sampler is not None
            generated = len(state.rows[indices[0]].text.ids)
            ids = None
            if job.sampler.needs_token_ids:
                ids = torch.tensor(
                    [job.prompt_ids + state.rows[i].text.ids for i in indices], device=logits.device
                )
            if len(indices) == len(state.rows):  # one request holds every row (a lone request): no copy
                chosen = job.sampler.choose(ids, logits, generated)
                break
            index = torch.tensor(indices, device=logits.device)
            chosen[index] = job.sampler.choose(ids, logits[index], generated)
        tokens = chosen.tolist()
        with self._cond:
            self._stats.tokens += len(tokens)
        finished: list[tuple[Job, Any]] = []
        for i, (row, token) in enumerate(zip(state.rows, tokens, strict=True)):
            job = row.job
            try:
                ended = row.text.add(token, eos) or len(row.text.ids) >= job.params.max_new_tokens
                if ended:
                    leaving.add(i)
                    job.live -= 1
                    job.results.append(row.text.finish())
                    if job.live == 0 and not job.done:
                        job.done = True
                        outcome: Any = sorted(job.results, key=lambda s: s.sequence_index)
                        if job.stopped():
                            outcome = cancelled()
                        finished.append((job, outcome))
            except Exception as exc:  # e.g. the stream callback failed: only this request ends
                log.exception("finishing a generated row failed")
                self._fail(job, exc)
        for i, row in enumerate(state.rows):
            if row.job.done:
                leaving.add(i)
        state.next_tokens = chosen
        if leaving:
            state.select([i for i in range(len(state.rows)) if i not in leaving])
        # Delivered together and last: requests that ended at this step wake up together (their outputs
        # can share a moderation round) and find themselves already out of the batch.
        for job, outcome in finished:
            job.deliver(outcome)
