"""Prompt screening: a policy's own scorers and rules applied to the prompt, before anything is generated.

Why: without it an abusive prompt costs a full generation before its output is held or blocked (Azure
Prompt Shields and LLM Guard's input scanners screen the input for that reason).

The rule, kept simple enough to explain to a client: the prompt is moderated exactly like an output under
the same policy (same scorers, the policy's thresholds and span rules, the identity-term check), and a
category *fires* on the prompt when that evaluation gives a reason of that category, whatever its action
(so a listed profanity the policy would only mask on an output still fires). The policy's
`prompt_screening` maps categories to `hold` or `block` (a category not named is off); the prompt's action
is the screening action of the most severe firing category, or RELEASE (generate as usual) when none
fires. Reasons are renamed `prompt:<category>` so that whoever reads them knows the prompt, not an
output, was judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moderation.moderator import Moderator
from moderation.policy import PROMPT_SCREENING_ACTIONS, Policy
from moderation.types import Action, Decision, Reason

__all__ = [
    "PROMPT_PREFIX",
    "SCREENING_ACTIONS",
    "PromptVerdict",
    "screen_prompts",
    "screening_verdict",
    "withheld_decision",
]

PROMPT_PREFIX = "prompt:"
# What a firing category can do to a prompt ("off" is a category that is not named).
SCREENING_ACTIONS = PROMPT_SCREENING_ACTIONS


@dataclass(frozen=True)
class PromptVerdict:
    """The screening of one prompt. `action`: RELEASE (generate as usual) or a screening action;
    `reasons`: the firing categories as `prompt:<category>` reasons carrying the screening action;
    `evaluation`: the policy's decision on the prompt text, whose scores are recorded."""

    action: Action
    reasons: tuple[Reason, ...]
    evaluation: Decision

    @property
    def screened_out(self) -> bool:
        return self.action is not Action.RELEASE


def screening_verdict(screening: Mapping[str, Action], evaluation: Decision) -> PromptVerdict:
    """Applies the screening rules to the policy's decision on a prompt (see the module docstring)."""
    reasons = tuple(
        Reason(
            category=PROMPT_PREFIX + r.category,
            score=r.score,
            threshold=r.threshold,
            action=screening[r.category],
            excerpt=r.excerpt,  # for reviewers; no edge sends excerpts, the audit log strips them
            scorer=r.scorer,
        )
        for r in evaluation.reasons
        if r.category in screening
    )
    action = max((r.action for r in reasons), default=Action.RELEASE)
    return PromptVerdict(
        action=action, reasons=tuple(sorted(reasons, key=lambda r: -r.action)), evaluation=evaluation
    )


def screen_prompts(
    moderator: Moderator, prompts: Sequence[str], *, policy: str | None
) -> list[PromptVerdict] | None:
    """One verdict per prompt under the named policy, or None when the policy screens nothing (then no
    scorer is called: screening costs only the policies that ask for it). Scorer errors propagate, as in
    `Moderator.moderate`: the caller must not generate for a prompt it could not screen."""
    chosen: Policy = moderator.policy(policy)
    if not chosen.prompt_screening:
        return None
    evaluations = moderator.moderate(prompts, policy=chosen.name, shadow=())
    return [screening_verdict(chosen.prompt_screening, e) for e in evaluations]


def withheld_decision(verdict: PromptVerdict) -> Decision:
    """The decision recorded for each output of a screened-out prompt: the screening action and reasons,
    the prompt's scores, no text (nothing was generated) and no spans (they would point into the prompt,
    not into the empty output)."""
    e = verdict.evaluation
    return Decision(
        action=verdict.action,
        text="",
        original_text="",
        scores=e.scores,
        reasons=verdict.reasons,
        spans=(),
        policy_name=e.policy_name,
        policy_version=e.policy_version,
        scorers=e.scorers,
        identity_checks=e.identity_checks,
    )
