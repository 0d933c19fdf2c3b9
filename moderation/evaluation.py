"""Measure a moderator on labelled texts: precision, recall, F1, confusion matrix.

The CSV has columns `text,label` (label 1 = must not be released as-is, 0 = clean) and optionally
`kind` (a free-form group name, reported separately). A prediction is positive when the decision is
anything but RELEASE: masking, holding and blocking all keep the text from going out unchanged.
`moderation/data/labelled_eval.csv` is a small hand-written set to start from; tune thresholds on your own.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moderation.moderator import Moderator
from moderation.types import Action

__all__ = ["EvalReport", "KindStats", "evaluate_file", "evaluate_rows", "format_report", "read_labelled"]


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    kind: str = ""


@dataclass(frozen=True)
class KindStats:
    total: int
    flagged: int


@dataclass(frozen=True)
class EvalReport:
    """Counts and the rates derived from them; `errors` lists misclassified examples for inspection."""

    tp: int
    fp: int
    fn: int
    tn: int
    policy: str
    actions: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, KindStats] = field(default_factory=dict)
    errors: tuple[tuple[str, int, str], ...] = ()  # (text, label, action)

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / self.total if self.total else 0.0


def read_labelled(path: str | Path) -> list[Example]:
    """Rows of a labelled CSV; a clear ValueError naming the line for a missing column or a bad label."""
    examples = []
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "label"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need text,label")
        for line, row in enumerate(reader, start=2):
            label = (row.get("label") or "").strip()
            if label not in ("0", "1"):
                raise ValueError(f"{path}:{line}: label must be 0 or 1, got {label!r}")
            examples.append(Example(row["text"] or "", int(label), (row.get("kind") or "").strip()))
    return examples


def evaluate_rows(
    moderator: Moderator, examples: Sequence[Example], *, policy: str | None = None, batch_size: int = 64
) -> EvalReport:
    """Moderate the examples in batches and count agreements with their labels."""
    tp = fp = fn = tn = 0
    actions: dict[str, int] = {}
    kinds: dict[str, list[int]] = {}
    errors = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        for example, decision in zip(
            batch, moderator.moderate([e.text for e in batch], policy=policy), strict=True
        ):
            flagged = decision.action is not Action.RELEASE
            actions[decision.action.name.lower()] = actions.get(decision.action.name.lower(), 0) + 1
            stats = kinds.setdefault(example.kind, [0, 0])
            stats[0] += 1
            stats[1] += flagged
            if flagged and example.label:
                tp += 1
            elif flagged:
                fp += 1
            elif example.label:
                fn += 1
            else:
                tn += 1
            if flagged != bool(example.label):
                errors.append((example.text, example.label, decision.action.name.lower()))
    return EvalReport(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        policy=moderator.policy(policy).name,
        actions=actions,
        by_kind={k: KindStats(total=v[0], flagged=v[1]) for k, v in kinds.items() if k},
        errors=tuple(errors),
    )


def evaluate_file(
    moderator: Moderator, path: str | Path, *, policy: str | None = None, batch_size: int = 64
) -> EvalReport:
    """The report for a labelled CSV file (see the module docstring for its format)."""
    return evaluate_rows(moderator, read_labelled(path), policy=policy, batch_size=batch_size)


def format_report(report: EvalReport, *, show_errors: int = 10) -> str:
    """A plain-text summary for the terminal (`modgate moderation eval FILE.csv`)."""
    lines = [
        f"policy {report.policy}: {report.total} texts",
        f"precision {report.precision:.3f}  recall {report.recall:.3f}  F1 {report.f1:.3f}  "
        f"accuracy {report.accuracy:.3f}",
        "",
        "                 predicted flagged   predicted released",
        f"label 1 (bad)    {report.tp:>17}   {report.fn:>18}",
        f"label 0 (clean)  {report.fp:>17}   {report.tn:>18}",
        "",
        "actions: " + ", ".join(f"{k} {v}" for k, v in sorted(report.actions.items())),
    ]
    if report.by_kind:
        lines.append(
            "flagged by kind: "
            + ", ".join(f"{kind} {s.flagged}/{s.total}" for kind, s in sorted(report.by_kind.items()))
        )
    if report.errors and show_errors:
        lines.append("")
        lines.append(f"misclassified ({len(report.errors)}; first {min(show_errors, len(report.errors))}):")
        for text, label, action in report.errors[:show_errors]:
            shown = text if len(text) <= 80 else text[:79] + "\u2026"
            lines.append(f"  label {label}, {action:<7} {shown}")
    return "\n".join(lines)
