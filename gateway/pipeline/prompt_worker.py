"""The prompt-run worker: generates the held prompts reviewers approved, through the pipeline.

Modelled on the webhook delivery worker (`gateway/webhooks/delivery.py`): each pass claims due runs in a
short transaction (a lease: `next_attempt_at` moves ahead; `SKIP LOCKED` on PostgreSQL, so replicas take
different runs), then generates each one with no transaction open. The run is recorded like any call (a
request, its moderated output, review item or ticket, audit events), and the run is marked done in the
transaction of that outcome, so a crash anywhere before it leaves the run pending, due again when the
lease ends (after a restart, on this or another replica); a run finished twice is recorded once
(`AlreadyRun` rolls the second outcome back).

The generation is the original request's prompt and parameters, with one sequence: output slot `j` of a
call with `num_return_sequences` n uses seed `seed + j`, so the slots of one prompt differ as generated
sequences would. It is not screened again (a human approved the prompt) and not counted against the
key's rate limits (the call was admitted when it came in, and a worker cannot wait out a limit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from gateway.generation.params import SamplingParams, sampling_params_from_record
from gateway.ops.periodic import backoff_step, repeat
from gateway.pipeline.callers import Caller
from gateway.pipeline.core import GenerationPipeline
from gateway.pipeline.recording import RequestHandle
from gateway.review.prompt_runs import AlreadyRun, ClaimedRun, claim_due, mark_done, retry_later
from gateway.storage.base import utcnow
from gateway.storage.models import GenerationOutput
from gateway.storage.tx import run_in_transaction

log = logging.getLogger(__name__)

SEED_MODULUS = 2**63


def run_params(run: ClaimedRun) -> SamplingParams:
    """The recorded parameters for one sequence (see the module docstring)."""
    seed = (int(run.parameters.get("seed", 0)) + run.sequence_index) % SEED_MODULUS
    return dataclasses.replace(sampling_params_from_record(run.parameters), num_return_sequences=1, seed=seed)


class PromptRunWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: GenerationPipeline,
        *,
        lease_s: float = 120.0,
        retry_base_s: float = 5.0,
        retry_max_s: float = 300.0,
        batch: int = 4,
    ) -> None:
        """`lease_s`: how long a claimed run is left to its worker before another may take it (a
        generation that outlasts it may run twice, but is recorded once: `AlreadyRun`); a failed run is
        retried after `retry_base_s` x 2^(attempts-1), at most `retry_max_s`."""
        self._sessions = sessions
        self._pipeline = pipeline
        self._lease = timedelta(seconds=lease_s)
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._batch = batch

    async def run_due(self) -> int:
        """One pass; returns how many runs it claimed."""
        claimed = await asyncio.to_thread(
            run_in_transaction,
            self._sessions,
            lambda s: claim_due(session=s, now=utcnow(), limit=self._batch, lease=self._lease),
        )
        for run in claimed:
            await self._run_one(run)
        return len(claimed)

    async def _run_one(self, run: ClaimedRun) -> None:
        caller = Caller(
            tenant=run.tenant,
            scopes=frozenset(),
            key_id=run.api_key_id,
            policy=run.policy,
            requests_per_minute=0,  # 0: unlimited (see the module docstring)
            tokens_per_minute=0,
        )

        def done(session: Session, handle: RequestHandle, rows: list[GenerationOutput]) -> None:
            mark_done(
                session=session, run=run, generation_request_id=handle.id, output_id=rows[0].id, now=utcnow()
            )

        try:
            await self._pipeline.generate(
                caller,
                run.request_id,
                [run.prompt],
                run_params(run),
                cancel=threading.Event(),
                should_stop=lambda: False,
                screen=False,
                then=done,
            )
        except AlreadyRun:
            log.info("prompt run %d was finished by another worker; this outcome is not recorded", run.id)
        except Exception as exc:
            delay = backoff_step(run.attempts, base_s=self._retry_base_s, max_s=self._retry_max_s)
            log.warning(
                "prompt run %d (ticket %s) failed (%s); retrying in %.0fs",
                run.id,
                run.ticket,
                exc.__class__.__name__,
                delay,
            )
            error = f"{exc.__class__.__name__}: {exc}"
            at = utcnow() + timedelta(seconds=delay)
            await asyncio.to_thread(
                run_in_transaction,
                self._sessions,
                lambda s: retry_later(session=s, run_id=run.id, error=error, at=at),
            )
        else:
            log.info("prompt run %d (ticket %s) generated", run.id, run.ticket)

    async def run(self, *, interval_s: float) -> None:
        """Until cancelled (`gateway.ops.periodic.repeat`)."""
        await repeat(
            self.run_due, interval_s=interval_s, what="prompt-run pass", logger=log, batch=self._batch
        )
