"""The backtest: what a proposed policy would have decided on past outputs, from their recorded evidence.

Shadow policies look forward (they are evaluated on new traffic); the backtest looks back. It re-runs
`policy.evaluate` on what each output's decision recorded (`replay.record_decision`: the merged scores,
the spans, the identity-check neutral scores, the reasons) and never on the text: no regeneration, no
re-scoring. So it is cheap, exact for what was recorded, and blind to what was not. The definitions
(repeated in docs/moderation.md):

- **Recorded action**: what the live policy decided at the time (release, mask, hold, block).
- **Proposed action**: `evaluate(proposal, recorded scores, recorded spans, recorded neutral scores)`;
  an output whose decision recorded a non-finite score (reason `non_finite_score`) is held at least,
  as `evaluate` holds any NaN or infinite score.
- **A category the recorded scores lack** (the proposal thresholds `threat`, the gateway ran no scorer
  that produces it): that rule does not fire, as it would not fire live with the same scorers. "Would
  release" therefore means "no rule of the proposal fires on the recorded evidence"; `unscored` counts,
  per threshold category of the proposal, the outputs that had no score for it, so that a rule the data
  cannot test is visible instead of silently passing.
- **Identity check**: a block on a category whose neutral score was recorded is softened to a hold as
  live (`IdentityCheck.softened`); where no neutral score was recorded (the live and shadow rules did
  not fire on that category, so the gateway never re-scored it) the block stays a block.
- **Would release** = proposed release or mask (masked text goes out without a human); **would
  withhold** = hold or block.
- **Stricter / looser**: the proposed action is more / less severe than the recorded one
  (release < mask < hold < block).
- **By category**: a stricter output counts under every category of the proposal's reasons at its
  proposed action (the rules that make it stricter); a looser one under every category of the recorded
  reasons at its recorded action (the rules that no longer decide it). One output may count under
  several categories.
- **Against reviewers**: outputs with a verdict (approved, edited, rejected; a blocked output gets one
  through an appeal). `rejected_released` = rejected outputs the proposal would release;
  `approved_withheld` = outputs approved unchanged that it would hold or block.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from moderation.config import build_policy
from moderation.config_values import ModerationConfigError
from moderation.identity import NeutralScores
from moderation.policy import NON_FINITE_SCORE, Policy, evaluate
from moderation.report import UNREVIEWED, ReviewVerdict
from moderation.types import Action, Span

__all__ = [
    "ACTIONS",
    "MAX_PROPOSAL_CHARS",
    "VERDICTS",
    "BacktestReport",
    "CategoryShift",
    "RecordedOutput",
    "backtest",
    "format_backtest",
    "proposal_from_toml",
    "proposed_action",
    "recorded_output",
]

ACTIONS: tuple[str, ...] = ("release", "mask", "hold", "block")
VERDICTS: tuple[str, ...] = (*(v.value for v in ReviewVerdict), UNREVIEWED)


MAX_PROPOSAL_CHARS = 65_536  # a policy table is a few hundred bytes; this bounds a pasted or uploaded file


def proposal_from_toml(text: str, *, name: str, known: Mapping[str, Policy]) -> Policy:
    """The proposed policy in `text`: a TOML document whose top-level keys are those of one
    `[moderation.policies.NAME]` table (`extends`, `thresholds`, ...). Checked by the config's own rules
    (`config.build_policy`), so a mistake is named as in the config; `extends` may name any of `known`.
    Raises ModerationConfigError."""
    return build_policy(name, table_from_toml(text), known=known)


def table_from_toml(text: str) -> dict[str, Any]:
    """The keys of one `[moderation.policies.NAME]` table from a policy file (a proposal here, a new
    stored version for `modgate policy set`), parsed and bounded but not checked: the caller checks the
    keys and values by the config's rules. Raises ModerationConfigError."""
    if len(text) > MAX_PROPOSAL_CHARS:
        raise ModerationConfigError(f"the policy file is over {MAX_PROPOSAL_CHARS} characters")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModerationConfigError(f"not valid TOML: {exc}") from None


def _name(action: Action) -> str:
    return action.name.lower()


@dataclass(frozen=True)
class RecordedOutput:
    """One past output as its decision recorded it. `reasons` are the recorded (category, action) pairs;
    `verdict` None = no reviewer verdict (released, blocked without an appeal, or still pending)."""

    action: Action
    scores: Mapping[str, float]
    spans: tuple[Span, ...] = ()
    reasons: tuple[tuple[str, Action], ...] = ()
    neutral: NeutralScores | None = None
    verdict: ReviewVerdict | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))
        if self.verdict is not None:
            object.__setattr__(self, "verdict", ReviewVerdict(self.verdict))

    @property
    def non_finite(self) -> bool:
        """The live decision saw a NaN or infinite score (stored scores drop it; the reason remains)."""
        return any(category == NON_FINITE_SCORE for category, _ in self.reasons)


def _action(value: Any) -> Action | None:
    if isinstance(value, str) and value.upper() in Action.__members__:
        return Action[value.upper()]
    return None


def recorded_output(
    *,
    action: str,
    scores: Mapping[str, Any] | None,
    reasons: Sequence[Any] | None,
    spans: Sequence[Any] | None,
    identity_checks: Sequence[Any] | None,
    verdict: ReviewVerdict | str | None = None,
) -> RecordedOutput:
    """A `RecordedOutput` from the plain data the gateway stores (`replay.record_decision`'s shapes and
    `dataclasses.asdict(Span)`). Entries of the wrong shape are left out, never guessed."""
    parsed_action = _action(action)
    if parsed_action is None:
        raise ValueError(f"recorded action must be one of {', '.join(ACTIONS)}, got {action!r}")
    finite = {
        str(k): float(v)
        for k, v in (scores or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    parsed_spans = tuple(
        Span(int(s["start"]), int(s["end"]), str(s["category"]), str(s.get("scorer", "")))
        for s in spans or ()
        if isinstance(s, Mapping) and {"start", "end", "category"} <= s.keys()
    )
    parsed_reasons = []
    for r in reasons or ():
        reason_action = _action(r.get("action")) if isinstance(r, Mapping) else None
        if isinstance(r, Mapping) and reason_action is not None and "category" in r:
            parsed_reasons.append((str(r["category"]), reason_action))
    neutral_scores: dict[str, float] = {}
    terms: tuple[str, ...] = ()
    terms_version = ""
    for c in identity_checks or ():
        value = c.get("neutral_score") if isinstance(c, Mapping) else None
        if isinstance(value, int | float) and math.isfinite(value) and "category" in c:
            neutral_scores[str(c["category"])] = float(value)
            terms = terms or tuple(str(t) for t in c.get("substituted_terms", ()))
            terms_version = terms_version or str(c.get("terms_version", ""))
    neutral = NeutralScores(neutral_scores, terms, terms_version) if neutral_scores else None
    return RecordedOutput(
        action=parsed_action,
        scores=finite,
        spans=parsed_spans,
        reasons=tuple(parsed_reasons),
        neutral=neutral,
        verdict=ReviewVerdict(verdict) if verdict is not None else None,
    )


def proposed_action(policy: Policy, output: RecordedOutput) -> tuple[Action, tuple[str, ...]]:
    """What `policy` decides on the recorded evidence, and the categories of its reasons at that action."""
    verdict = evaluate(policy, scores=output.scores, spans=output.spans, text="", neutral=output.neutral)
    action = verdict.action
    categories = [r.category for r in verdict.reasons if r.action is action]
    if output.non_finite and action < Action.HOLD:
        action, categories = Action.HOLD, [NON_FINITE_SCORE]
    elif output.non_finite and action is Action.HOLD:
        categories.append(NON_FINITE_SCORE)
    return action, tuple(dict.fromkeys(categories))


@dataclass(frozen=True)
class CategoryShift:
    """Outputs a category's rule makes stricter (proposal) or that it no longer decides (recorded)."""

    category: str
    stricter: int
    looser: int


@dataclass(frozen=True)
class BacktestReport:
    """`matrix[recorded][proposed]` and `verdicts[verdict][proposed]` hold every action and verdict key,
    zeros included, so that tables and JSON always have the same shape."""

    policy: str
    policy_version: str
    outputs: int
    changed: int
    stricter: int
    looser: int
    matrix: Mapping[str, Mapping[str, int]]
    categories: tuple[CategoryShift, ...]
    verdicts: Mapping[str, Mapping[str, int]]
    rejected_released: int
    approved_withheld: int
    unscored: Mapping[str, int]
    skipped: int = 0  # outputs in the window no decision covers (a stream cut short): not evaluated
    scope: Mapping[str, str | None] = field(default_factory=dict)  # the window, as the caller chose it


def backtest(
    policy: Policy,
    outputs: Iterable[RecordedOutput],
    *,
    skipped: int = 0,
    scope: Mapping[str, str | None] | None = None,
) -> BacktestReport:
    """Evaluate `policy` on every recorded output and compare with what was decided (module docstring)."""
    matrix: dict[str, Counter[str]] = {a: Counter() for a in ACTIONS}
    verdicts: dict[str, Counter[str]] = {v: Counter() for v in VERDICTS}
    stricter_by: Counter[str] = Counter()
    looser_by: Counter[str] = Counter()
    unscored: Counter[str] = Counter()
    count = stricter = looser = 0
    for out in outputs:
        count += 1
        proposed, categories = proposed_action(policy, out)
        matrix[_name(out.action)][_name(proposed)] += 1
        verdicts[out.verdict.value if out.verdict is not None else UNREVIEWED][_name(proposed)] += 1
        if proposed > out.action:
            stricter += 1
            stricter_by.update(categories)
        elif proposed < out.action:
            looser += 1
            looser_by.update(list(dict.fromkeys(c for c, a in out.reasons if a is out.action)))
        unscored.update(c for c in policy.thresholds if c not in out.scores)

    def frozen(counter: Counter[str], keys: Sequence[str]) -> Mapping[str, int]:
        return MappingProxyType({k: counter[k] for k in keys})

    shifts = sorted(
        (CategoryShift(c, stricter_by[c], looser_by[c]) for c in stricter_by.keys() | looser_by.keys()),
        key=lambda s: (-(s.stricter + s.looser), s.category),
    )
    rejected = verdicts[ReviewVerdict.REJECTED.value]
    approved = verdicts[ReviewVerdict.APPROVED.value]
    return BacktestReport(
        policy=policy.name,
        policy_version=policy.version,
        outputs=count,
        changed=stricter + looser,
        stricter=stricter,
        looser=looser,
        matrix=MappingProxyType({a: frozen(matrix[a], ACTIONS) for a in ACTIONS}),
        categories=tuple(shifts),
        verdicts=MappingProxyType({v: frozen(verdicts[v], ACTIONS) for v in VERDICTS}),
        rejected_released=rejected["release"] + rejected["mask"],
        approved_withheld=approved["hold"] + approved["block"],
        unscored=MappingProxyType({c: unscored[c] for c in sorted(policy.thresholds)}),
        skipped=skipped,
        scope=MappingProxyType(dict(scope or {})),
    )


def format_backtest(report: BacktestReport) -> str:
    """The report as fixed-width text, for `modgate policy backtest` on a terminal."""
    lines = [
        f"Backtest of policy {report.policy} (version {report.policy_version})",
        f"outputs {report.outputs}  changed {report.changed}  stricter {report.stricter}  "
        f"looser {report.looser}  skipped (no decision) {report.skipped}",
        "",
        "recorded -> proposed " + "".join(f"{a:>9}" for a in ACTIONS),
    ]
    for recorded in ACTIONS:
        row = report.matrix[recorded]
        lines.append(f"{recorded:<21}" + "".join(f"{row[a]:>9}" for a in ACTIONS))
    lines += ["", "verdict -> proposed  " + "".join(f"{a:>9}" for a in ACTIONS)]
    for verdict in VERDICTS:
        row = report.verdicts[verdict]
        lines.append(f"{verdict:<21}" + "".join(f"{row[a]:>9}" for a in ACTIONS))
    lines += [
        f"rejected outputs it would release: {report.rejected_released}",
        f"approved outputs it would hold or block: {report.approved_withheld}",
        "",
        f"{'category':<21}{'stricter':>9}{'looser':>9}",
    ]
    lines += [f"{s.category:<21}{s.stricter:>9}{s.looser:>9}" for s in report.categories] or ["(no change)"]
    missing = {c: n for c, n in report.unscored.items() if n}
    if missing:
        lines += ["", "outputs with no score for a category the proposal thresholds (its rule cannot fire):"]
        lines += [f"  {c}: {n}" for c, n in missing.items()]
    return "\n".join(lines)
