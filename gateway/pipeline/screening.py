"""Prompt screening in the pipeline: screen a call's prompts before generation, and turn a screened-out
prompt into recorded outputs that every front door already knows how to present.

Why outputs: a blocked prompt must answer in gRPC, `POST /score` and `/v1` exactly like a blocked output
(no text, the categories, a ticket to appeal with), be recorded and audited like one, and keep the shape
of the answer (`num_return_sequences` outputs per prompt, so `/v1` choice indexes and `/score` keys stay
where clients expect them). So each of its `n` output slots is recorded with the screening decision, an
empty text, zero generated tokens and finish reason `prompt_screened`; no generation runs for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from gateway.generation.generator import FinishReason, GeneratedSequence
from gateway.generation.worker import Worker
from gateway.ops.metrics import PROMPT_SCREENING
from gateway.pipeline.recording import OutputRecord
from moderation.moderator import Moderator
from moderation.prompt_screening import PromptVerdict, screen_prompts, withheld_decision


class PromptScreen:
    """Screens prompts on the moderation worker (the scorers' owner thread), with the moderator the call
    pinned (policies can change at runtime: a call screens and moderates under the same rules)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def screen(
        self,
        prompts: Sequence[str],
        *,
        moderator: Moderator,
        policy: str | None,
        cancel: threading.Event,
    ) -> list[PromptVerdict | None]:
        """One verdict per prompt (None for all when the policy screens nothing: no scorer runs), counted
        per action."""
        chosen = moderator.policy(policy)
        if not chosen.prompt_screening:
            return [None] * len(prompts)
        verdicts = await self._worker.run(cancel, screen_prompts, moderator, list(prompts), policy=policy)
        assert verdicts is not None
        for v in verdicts:
            PROMPT_SCREENING.labels(chosen.name, v.action.name.lower()).inc()
        return list(verdicts)


def screened_records(
    *, prompt_index: int, prompt: str, verdict: PromptVerdict, sequences: int, prompt_tokens: int
) -> list[OutputRecord]:
    """The `sequences` output records of a screened-out prompt: the screening decision, no text."""
    decision = withheld_decision(verdict)
    return [
        OutputRecord(
            prompt_index=prompt_index,
            prompt=prompt,
            sequence=GeneratedSequence(
                sequence_index=j,
                text="",
                prompt_tokens=prompt_tokens,
                generated_tokens=0,
                finish_reason=FinishReason.PROMPT_SCREENED,
            ),
            decision=decision,
        )
        for j in range(sequences)
    ]
