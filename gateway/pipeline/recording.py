"""Writes a call's life to the database before the client hears about it.

A request row is committed before generation starts; outputs, review items (with their tickets) and
audit events are committed in one transaction before the answer is sent; a call that fails or is
cancelled on the way is marked so. The database is the witness that the invariant held.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.audit.chain import append
from gateway.errors import Cancelled
from gateway.generation.generator import GeneratedSequence
from gateway.generation.params import SamplingParams
from gateway.review import qa
from gateway.review.queue import create_review_item, new_ticket
from gateway.storage.models import (
    GenerationOutput,
    GenerationRequest,
    ModerationAction,
    RequestStatus,
)
from gateway.storage.records import record_output, record_request, set_request_status
from gateway.storage.tx import in_transaction
from gateway.webhooks import events as webhook_events
from gateway.webhooks.outbox import enqueue as enqueue_webhook
from moderation.replay import record_decision
from moderation.types import Action, Decision

log = logging.getLogger(__name__)
T = TypeVar("T")

ACTOR = "gateway"
DEFAULT_ESCALATE = ("threat", "severe_toxicity")

_ACTION = {
    Action.RELEASE: ModerationAction.RELEASE,
    Action.MASK: ModerationAction.MASK,
    Action.HOLD: ModerationAction.HOLD,
    Action.BLOCK: ModerationAction.BLOCK,
}


@dataclass(frozen=True)
class ClientTags:
    """What a client says about its call, for an operator tracing it back: `user` (OpenAI's: the
    client's own id of the person behind the call) and `metadata` (OpenAI's chat `metadata`: string
    pairs). Recorded with the request's parameters and its `request.received` audit event; the edge that
    takes them bounds them (gateway/web/openai/requests.py)."""

    user: str | None = None
    metadata: Mapping[str, str] | None = None

    def recorded(self) -> dict[str, Any]:
        """The entries for the request's parameters: only those the client gave."""
        given: dict[str, Any] = {}
        if self.user is not None:
            given["user"] = self.user
        if self.metadata:
            given["metadata"] = dict(self.metadata)
        return given


@dataclass(frozen=True)
class OutputRecord:
    prompt_index: int
    prompt: str
    sequence: GeneratedSequence
    decision: Decision
    # For streams: what the client was sent. When the moderator stopped a stream's release, this prefix
    # is all the client saw of a held or blocked text: the output row keeps it (`streamed_text`), the
    # audit log does not (it carries no text).
    streamed_text: str | None = None


@dataclass(frozen=True)
class ReleasedPrefix:
    """What a stream had sent when it ended early (cancelled, deadline, failure): recorded as its output
    so that an operator or reviewer sees what the client got. `released_text` is exactly what was sent
    (masked where the policy masked); `generated_text` is what the model had produced so far, the
    held-back tail included. No moderation decision covers the whole text: scores and reasons stay empty
    and `finish_reason` says how the stream ended."""

    prompt: str
    generated_text: str
    released_text: str
    policy_name: str
    policy_version: str
    prompt_tokens: int


@dataclass(frozen=True)
class RequestHandle:
    id: str
    request_id: str
    tenant: str


OutcomeHook = Callable[[Session, RequestHandle, list[GenerationOutput]], None]


class Recorder:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        escalate_categories: Sequence[str] = DEFAULT_ESCALATE,
        qa_rates: Mapping[str, float] | None = None,
    ) -> None:
        """`qa_rates`: policy -> share of its released outputs drawn into the QA sample
        (gateway/review/qa.py), in the outcome's transaction."""
        self._sessions = session_factory
        self._escalate = frozenset(escalate_categories)
        self._qa_rates = dict(qa_rates or {})

    async def _in_transaction(self, work: Callable[[Session], T]) -> T:
        return await in_transaction(self._sessions, work)

    async def request_received(
        self,
        *,
        request_id: str,
        tenant: str,
        api_key_id: str | None,
        model_id: str,
        model_revision: str,
        params: SamplingParams,
        prompts: Sequence[str],
        stream: bool,
        tags: ClientTags | None = None,
    ) -> RequestHandle:
        """`tags` (the client's `user` and `metadata`) are recorded with the parameters, where an operator
        tracing abuse looks."""
        parameters: dict[str, Any] = dataclasses.asdict(params)
        parameters["stop"] = list(params.stop)
        parameters.update(tags.recorded() if tags is not None else {})

        def work(session: Session) -> RequestHandle:
            row = record_request(
                session=session,
                request_id=request_id,
                tenant=tenant,
                api_key_id=api_key_id,
                model_id=model_id,
                model_revision=model_revision,
                parameters={**parameters, "stream": stream},
                prompt_count=len(prompts),
            )
            set_request_status(session=session, request=row, status=RequestStatus.GENERATING)
            append(
                session=session,
                event_type=events.REQUEST_RECEIVED,
                actor=ACTOR,
                tenant=tenant,
                request_id=request_id,
                payload={
                    "generation_request": row.id,
                    "model": model_id,
                    "model_revision": model_revision,
                    "parameters": parameters,
                    "seed": params.seed,
                    "prompt_count": len(prompts),
                    "stream": stream,
                },
            )
            return RequestHandle(id=row.id, request_id=request_id, tenant=tenant)

        return await self._in_transaction(work)

    async def outcome(
        self, handle: RequestHandle, outputs: Sequence[OutputRecord], *, then: OutcomeHook | None = None
    ) -> list[str | None]:
        """Stores every output with its decision; held ones get a review item and a ticket, blocked ones a
        ticket to appeal with. Returns the tickets in order (None where released). `then` runs last in
        the same transaction, with the stored rows (an approved prompt's run is marked done there)."""

        def work(session: Session) -> list[str | None]:
            request = session.get_one(GenerationRequest, handle.id)
            tickets: list[str | None] = []
            rows: list[GenerationOutput] = []
            for o in outputs:
                d = o.decision
                stored = record_decision(d)
                row = record_output(
                    session=session,
                    request=request,
                    prompt_index=o.prompt_index,
                    sequence_index=o.sequence.sequence_index,
                    prompt=o.prompt,
                    generated_text=o.sequence.text,
                    action=_ACTION[d.action],
                    masked_text=d.text if d.action == Action.MASK else None,
                    policy_name=d.policy_name,
                    policy_version=d.policy_version,
                    scores=dict(d.scores),
                    reasons=stored["reasons"],
                    spans=[dataclasses.asdict(sp) for sp in d.spans],
                    scorers=stored["scorers"],
                    identity_checks=stored["identity_checks"],
                    shadow=stored["shadow"],
                    prompt_tokens=o.sequence.prompt_tokens,
                    generated_tokens=o.sequence.generated_tokens,
                    finish_reason=o.sequence.finish_reason.value,
                )
                row.streamed_text = o.streamed_text
                if d.action in (Action.HOLD, Action.BLOCK):
                    # Held: the handle for the reviewed result. Blocked: the handle for an appeal.
                    row.ticket = new_ticket()  # before the audit events, which name it
                self._audit_output(session, handle, row, o)
                if self._qa_rates and d.releasable:
                    qa.draw(session=session, output=row, rates=self._qa_rates)
                if d.action == Action.HOLD:
                    create_review_item(
                        session=session,
                        output=row,
                        escalated=bool({r.category for r in d.reasons} & self._escalate),
                        actor=ACTOR,
                    )  # which also puts the tenant's `output.held` webhook event in the outbox
                elif d.action == Action.BLOCK and row.ticket is not None:
                    enqueue_webhook(
                        session=session,
                        event_type=webhook_events.OUTPUT_BLOCKED,
                        tenant=handle.tenant,
                        ticket=row.ticket,
                        request_id=handle.request_id,
                        state=row.status.value,
                    )
                tickets.append(row.ticket)
                rows.append(row)
            set_request_status(session=session, request=request, status=RequestStatus.COMPLETED)
            if then is not None:
                then(session, handle, rows)
            return tickets

        return await self._in_transaction(work)

    def _audit_output(
        self,
        session: Session,
        handle: RequestHandle,
        row: GenerationOutput,
        o: OutputRecord,
    ) -> None:
        d = o.decision
        # No excerpts: audit rows are readable through Audit.Query; the text stays in the output row.
        public = record_decision(d, excerpts=False)
        common: dict[str, Any] = {"tenant": handle.tenant, "request_id": handle.request_id, "actor": ACTOR}
        append(
            session=session,
            event_type=events.GENERATION_COMPLETED,
            payload={
                "output": row.id,
                "prompt_index": o.prompt_index,
                "sequence_index": o.sequence.sequence_index,
                "prompt_tokens": o.sequence.prompt_tokens,
                "generated_tokens": o.sequence.generated_tokens,
                "finish_reason": o.sequence.finish_reason.value,
            },
            **common,
        )
        append(
            session=session,
            event_type=events.MODERATION_DECIDED,
            ticket=row.ticket,
            action=d.action.name.lower(),
            payload={
                "output": row.id,
                "policy": d.policy_name,
                "policy_version": d.policy_version,
                "scorers": public["scorers"],
                "scores": public["scores"],
                "reasons": public["reasons"],
                "identity_checks": public["identity_checks"],
                "shadow": public["shadow"],
            },
            **common,
        )
        if d.releasable:  # held ones get review.held from create_review_item
            append(
                session=session,
                event_type=events.RESULT_RELEASED,
                action=d.action.name.lower(),
                payload={"output": row.id},
                **common,
            )

    @asynccontextmanager
    async def failure_guard(
        self, handle: RequestHandle, released: Callable[[], ReleasedPrefix | None] = lambda: None
    ) -> AsyncIterator[None]:
        """Marks the request cancelled or failed when the body raises, then re-raises. `released`: what
        a stream had sent by then (None or empty: nothing), stored as the request's output in the same
        transaction."""
        try:
            yield
        except BaseException as exc:
            # GeneratorExit: a stream's consumer closed it (gRPC does when the client goes away while
            # the stream waits at a `yield`); as much a cancellation as a CancelledError at an `await`.
            cancelled = isinstance(exc, Cancelled | asyncio.CancelledError | GeneratorExit)
            status = RequestStatus.CANCELLED if cancelled else RequestStatus.FAILED
            event = events.REQUEST_CANCELLED if cancelled else events.GENERATION_FAILED
            error = "cancelled" if cancelled else exc.__class__.__name__
            prefix = released()

            def work(session: Session) -> None:
                request = session.get_one(GenerationRequest, handle.id)
                set_request_status(session=session, request=request, status=status, error=error)
                payload: dict[str, Any] = {"generation_request": handle.id, "error": error}
                if prefix is not None and prefix.released_text:
                    payload["output"] = _record_prefix(session, request, prefix, ended=status.value).id
                append(
                    session=session,
                    event_type=event,
                    actor=ACTOR,
                    tenant=handle.tenant,
                    request_id=handle.request_id,
                    payload=payload,
                )

            try:
                await asyncio.shield(self._in_transaction(work))
            except Exception:
                log.exception("could not mark request %s as %s", handle.request_id, status.value)
            raise


def _record_prefix(
    session: Session, request: GenerationRequest, prefix: ReleasedPrefix, *, ended: str
) -> GenerationOutput:
    """The output row of a stream that ended early: released (or masked) as far as it was sent."""
    sent = prefix.released_text
    masked = prefix.generated_text[: len(sent)] != sent  # masking keeps lengths: a prefix unless masked
    row = record_output(
        session=session,
        request=request,
        prompt_index=0,
        sequence_index=0,
        prompt=prefix.prompt,
        generated_text=prefix.generated_text,
        action=ModerationAction.MASK if masked else ModerationAction.RELEASE,
        masked_text=sent if masked else None,
        policy_name=prefix.policy_name,
        policy_version=prefix.policy_version,
        prompt_tokens=prefix.prompt_tokens,
        finish_reason=ended,
    )
    row.released_text = sent  # what was sent, not the held-back tail of `generated_text`
    row.streamed_text = sent
    session.flush()
    return row
