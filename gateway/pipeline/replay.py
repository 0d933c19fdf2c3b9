"""Replay: re-run a recorded generation and its moderation, and say whether both came out the same.

A decision can only be explained later if it can be reproduced: the request row holds the model, its
revision and every sampling parameter with the seed actually used; the output row holds the policy
version and each scorer's version. Replay regenerates through the serving path (the batcher) and
re-scores with the loaded scorers, then lists every difference (`moderation.replay.compare_decisions`),
without quoting the texts. Every replay is an audit event (`output.replayed`: who, which ticket, whether it
came out identical), from the CLI and from the web queue alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.audit.chain import append
from gateway.errors import NotFound
from gateway.generation.batcher import Batcher
from gateway.generation.generator import FinishReason, Generator
from gateway.generation.params import sampling_params_from_record
from gateway.generation.worker import Worker
from gateway.policies.live import LiveModerator, current_moderator
from gateway.policies.store import recorded_policy
from gateway.storage.models import GenerationOutput
from gateway.storage.tx import in_transaction
from gateway.wordlists.recorded import with_recorded_lists
from moderation.moderator import Moderator
from moderation.prompt_screening import screen_prompts, withheld_decision
from moderation.replay import compare_decisions
from moderation.types import Decision

T = TypeVar("T")


@dataclass(frozen=True)
class Recorded:
    """What the database says happened, as plain data (no ORM object outlives its transaction)."""

    ticket: str
    request_id: str
    tenant: str
    prompt: str
    generated_text: str
    sequence_index: int
    model_id: str
    model_revision: str | None
    parameters: dict[str, Any]
    decision: dict[str, Any]
    finish_reason: str | None = None


@dataclass
class ReplayReport:
    ticket: str
    text_identical: bool
    decision_differences: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.text_identical and not self.decision_differences

    def lines(self) -> list[str]:
        verdict = "identical" if self.identical else "DIFFERENT"
        out = [f"replay of {self.ticket}: {verdict}"]
        out += [f"  note: {n}" for n in self.notes]
        out.append("  text: identical" if self.text_identical else "  text: differs")
        out += [f"  decision: {d}" for d in self.decision_differences] or ["  decision: identical"]
        return out


async def load_recorded(sessions: sessionmaker[Session], ticket: str) -> Recorded:
    def work(session: Session) -> Recorded:
        out = session.scalars(select(GenerationOutput).where(GenerationOutput.ticket == ticket)).one_or_none()
        if out is None:
            raise NotFound(f"no output with ticket {ticket!r}")
        return Recorded(
            ticket=ticket,
            request_id=out.request.request_id,
            tenant=out.request.tenant,
            prompt=out.prompt,
            generated_text=out.generated_text,
            sequence_index=out.sequence_index,
            model_id=out.request.model_id,
            model_revision=out.request.model_revision,
            parameters=dict(out.request.parameters or {}),
            decision={
                "action": out.action.value,
                "scores": dict(out.scores or {}),
                "reasons": list(out.reasons or []),
                "policy_name": out.policy_name,
                "policy_version": out.policy_version,
                "scorers": list(out.scorers or []),
                "identity_checks": list(out.identity_checks or []),
                "shadow": list(out.shadow or []),
                "masked_text": out.released_text if out.action.value == "mask" else None,
            },
            finish_reason=out.finish_reason,
        )

    return await in_transaction(sessions, work)


async def replay(
    ticket: str,
    *,
    actor: str,
    sessions: sessionmaker[Session],
    generator: Generator,
    batcher: Batcher,
    moderator: Moderator | LiveModerator,
    moderation_worker: Worker | None = None,
) -> ReplayReport:
    """Regenerates the ticket's output with its recorded parameters and seed, re-moderates it under its
    recorded policy, and compares. Notes say when the model or policy available now is not the one
    recorded (the comparison is then expected to differ). In a running server, pass its
    `moderation_worker`: the scorers then run on the thread that owns them, off the event loop.
    `actor` is who asked (`reviewer:NAME` from the web queue, `cli:USER` from `modgate replay`): the
    replay is written to the audit log under that name. A decision made under an older version of its
    policy is re-moderated under that version (its rules are kept in the database by their hash), not
    the one served now; a decision made with stored word lists is re-moderated with the list versions it
    recorded (gateway/wordlists/recorded.py), not those attached now."""
    recorded = await load_recorded(sessions, ticket)
    notes: list[str] = []
    loaded = generator.loaded
    if (recorded.model_id, recorded.model_revision) != (loaded.model_id, loaded.revision):
        notes.append(
            f"recorded model {recorded.model_id}@{recorded.model_revision}, "
            f"loaded {loaded.model_id}@{loaded.revision}"
        )
    serving = await in_transaction(
        sessions,
        lambda s: with_recorded_lists(
            session=s,
            base=current_moderator(moderator),
            recorded_scorers=recorded.decision["scorers"],
            notes=notes,
        ),
    )
    moderator, policy = await _at_recorded_version(sessions, serving, recorded, notes)
    if recorded.finish_reason == FinishReason.PROMPT_SCREENED.value:
        # Nothing was generated: the replay is the prompt's screening, and it generates nothing either.
        text = recorded.generated_text
        decision = await _run(moderation_worker, _rescreen, moderator, recorded.prompt, policy, notes)
    else:
        sequences = await batcher.generate(
            recorded.prompt,
            sampling_params_from_record(recorded.parameters),
            cancel=threading.Event(),
            should_stop=lambda: False,
        )
        text = sequences[recorded.sequence_index].text
        (decision,) = await _run(moderation_worker, moderator.moderate, [text], policy=policy)
    report = ReplayReport(
        ticket=ticket,
        text_identical=text == recorded.generated_text,
        decision_differences=compare_decisions(recorded.decision, decision),
        notes=notes,
    )
    await in_transaction(sessions, lambda session: _audit(session, recorded, report, actor))
    return report


async def _at_recorded_version(
    sessions: sessionmaker[Session], serving: Moderator, recorded: Recorded, notes: list[str]
) -> tuple[Moderator, str | None]:
    """The moderator and policy name to replay with: `serving` when it has the recorded version of the
    policy; else `serving`'s scorers under that version rebuilt from the stored rules; else (never
    stored, e.g. the config file changed before policies were stored) the served policy, with a note."""
    name: str = recorded.decision["policy_name"]
    version: str = recorded.decision["policy_version"]
    if name in serving.policy_names and serving.policy(name).version == version:
        return serving, name
    older = await in_transaction(sessions, lambda s: recorded_policy(session=s, name=name, version=version))
    if older is not None:
        notes.append(f"policy {name!r} replayed at its recorded version {version}, not the one served now")
        return serving.with_policies({**serving.policies, name: older}), name
    if name not in serving.policy_names:
        notes.append(f"policy {name!r} is not configured now; replayed under the default policy")
        return serving, None
    notes.append(
        f"policy {name!r} version {version} is not stored; replayed under the served version "
        f"{serving.policy(name).version}"
    )
    return serving, name


async def _run(worker: Worker | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """On the server's moderation worker (the scorers' owner thread) when given, else a plain thread."""
    if worker is not None:
        return await worker.run(threading.Event(), fn, *args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def _rescreen(moderator: Moderator, prompt: str, policy: str | None, notes: list[str]) -> Decision:
    """The decision prompt screening gives the prompt now: the withheld decision when it is still
    screened out, else the policy's evaluation of the prompt (which then differs from the record)."""
    verdicts = screen_prompts(moderator, [prompt], policy=policy)
    if verdicts is None:
        notes.append("the policy screens no prompts now; compared with its evaluation of the prompt")
        (evaluation,) = moderator.moderate([prompt], policy=policy, shadow=())
        return evaluation
    (verdict,) = verdicts
    if not verdict.screened_out:
        notes.append("the prompt is not screened out now; compared with the policy's evaluation of it")
        return verdict.evaluation
    return withheld_decision(verdict)


def _audit(session: Session, recorded: Recorded, report: ReplayReport, actor: str) -> None:
    """The verdict and counts; the listed differences stay with whoever ran the replay (CLI output, the
    admin's page), as the audit log is readable through `Audit.Query`."""
    append(
        session=session,
        event_type=events.OUTPUT_REPLAYED,
        actor=actor,
        tenant=recorded.tenant,
        request_id=recorded.request_id,
        ticket=recorded.ticket,
        action="identical" if report.identical else "different",
        payload={
            "text_identical": report.text_identical,
            "decision_differences": len(report.decision_differences),
            "notes": len(report.notes),
        },
    )
