"""Replay support: does moderating a stored output again reproduce the decision that was recorded?

The gateway stores each decision as plain JSON-able data (`record_decision` writes that shape); `modgate
replay TICKET` moderates the stored text again with the current configuration and asks
`compare_decisions` what differs: an empty list means "identical". Differences are described without
quoting the text (excerpts are compared, never printed), so the output is safe for logs and terminals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moderation.types import Action, Decision, IdentityCheck, Reason

__all__ = ["DEFAULT_TOLERANCE", "compare_decisions", "record_decision"]

# Scores of the same model on the same text move by ~1e-6 with batch composition and padding, and by
# more across devices; a difference below this is not a different decision.
DEFAULT_TOLERANCE = 1e-4
_PAST_TENSE = {"released": "release", "masked": "mask", "held": "hold", "blocked": "block"}
_REQUIRED = ("action", "scores", "reasons", "policy_name", "policy_version", "scorers")


def record_decision(decision: Decision, *, excerpts: bool = True) -> dict[str, Any]:
    """The decision as plain data: the shape `compare_decisions` reads (and the gateway stores)."""
    record: dict[str, Any] = {
        "action": decision.action.name.lower(),
        "scores": dict(decision.scores),
        "reasons": [_reason_record(r, excerpts=excerpts) for r in decision.reasons],
        "policy_name": decision.policy_name,
        "policy_version": decision.policy_version,
        "scorers": [{"name": s.name, "version": s.version} for s in decision.scorers],
        "masked_text": decision.text if decision.action is Action.MASK else None,
        "identity_checks": [_check_record(c) for c in decision.identity_checks],
        "shadow": [
            {
                "policy_name": s.policy_name,
                "policy_version": s.policy_version,
                "action": s.action.name.lower(),
                "reasons": [_reason_record(r, excerpts=excerpts) for r in s.reasons],
            }
            for s in decision.shadow
        ],
    }
    return record


def _reason_record(reason: Reason, *, excerpts: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "category": reason.category,
        "score": reason.score,
        "threshold": reason.threshold,
        "action": reason.action.name.lower(),
        "scorer": reason.scorer,
    }
    if excerpts:
        item["excerpt"] = reason.excerpt
    return item


def _check_record(check: IdentityCheck) -> dict[str, Any]:
    return {
        "category": check.category,
        "original_score": check.original_score,
        "neutral_score": check.neutral_score,
        "threshold": check.threshold,
        "substituted_terms": list(check.substituted_terms),
        "softened": check.softened,
        "terms_version": check.terms_version,
    }


def _action(value: Any) -> str:
    if isinstance(value, Action):
        return value.name.lower()
    if isinstance(value, int) and not isinstance(value, bool):
        return Action(value).name.lower()
    text = str(value).lower()
    return _PAST_TENSE.get(text, text)


def _close(a: Any, b: Any, tolerance: float) -> bool:
    try:
        return abs(float(a) - float(b)) <= tolerance
    except (TypeError, ValueError):
        return False


def compare_decisions(
    recorded: Mapping[str, Any], replayed: Decision, *, tolerance: float = DEFAULT_TOLERANCE
) -> list[str]:
    """What differs between a recorded decision and a replayed one, one line each; [] when identical.

    Compared: policy name and version, scorer names and versions, the action, every score (a difference
    above `tolerance` counts), the reasons as a multiset (order is not compared; category, scorer,
    action, score, threshold and, when recorded, excerpt), and, when the record has them, the masked text
    and the identity checks. A required key missing from the record is itself a difference: a record
    that cannot be checked is never called identical.
    """
    diffs = [f"the record has no {key}" for key in _REQUIRED if key not in recorded]
    for key in ("policy_name", "policy_version"):
        if key in recorded and recorded[key] != getattr(replayed, key):
            diffs.append(f"{key}: recorded {recorded[key]!r}, replayed {getattr(replayed, key)!r}")
    if "scorers" in recorded:
        diffs += _compare_scorers(recorded["scorers"], replayed)
    if "action" in recorded and _action(recorded["action"]) != _action(replayed.action):
        diffs.append(f"action: recorded {_action(recorded['action'])}, replayed {_action(replayed.action)}")
    if "scores" in recorded:
        diffs += _compare_scores(recorded["scores"], replayed.scores, tolerance)
    if "reasons" in recorded:
        diffs += _compare_reasons(recorded["reasons"], replayed.reasons, tolerance)
    if "masked_text" in recorded:
        now = replayed.text if replayed.action is Action.MASK else None
        if recorded["masked_text"] != now:
            diffs.append("masked text differs")
    if "identity_checks" in recorded:
        diffs += _compare_checks(recorded["identity_checks"], replayed.identity_checks, tolerance)
    return diffs


def _compare_scorers(recorded: Sequence[Mapping[str, Any]], replayed: Decision) -> list[str]:
    before = {str(s["name"]): str(s["version"]) for s in recorded}
    after = {s.name: s.version for s in replayed.scorers}
    diffs = []
    for name in sorted(before.keys() | after.keys()):
        if name not in after:
            diffs.append(f"scorer {name}: recorded (version {before[name]}), not in the replay")
        elif name not in before:
            diffs.append(f"scorer {name}: in the replay (version {after[name]}), not recorded")
        elif before[name] != after[name]:
            diffs.append(f"scorer {name}: recorded version {before[name]}, replayed {after[name]}")
    return diffs


def _compare_scores(
    recorded: Mapping[str, Any], replayed: Mapping[str, float], tolerance: float
) -> list[str]:
    diffs = []
    for category in sorted(recorded.keys() | replayed.keys()):
        if category not in replayed:
            diffs.append(f"score {category}: recorded {_num(recorded[category])}, missing from the replay")
        elif category not in recorded:
            diffs.append(f"score {category}: replayed {replayed[category]:.4f}, not recorded")
        elif not _close(recorded[category], replayed[category], tolerance):
            try:
                gap = f"difference {abs(float(recorded[category]) - float(replayed[category])):.2g}"
            except (TypeError, ValueError):
                gap = "not a number"
            diffs.append(
                f"score {category}: recorded {_num(recorded[category])}, replayed {_num(replayed[category])} "
                f"({gap}, tolerance {tolerance:g})"
            )
    return diffs


def _same_reason(a: Mapping[str, Any], b: Mapping[str, Any], tolerance: float) -> bool:
    return (
        a["category"] == b["category"]
        and a["scorer"] == b["scorer"]
        and a["action"] == b["action"]
        and _close(a["score"], b["score"], tolerance)
        and _close(a["threshold"], b["threshold"], tolerance)
        and ("excerpt" not in a or a["excerpt"] == b["excerpt"])
    )


def _num(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return repr(value)


def _describe(r: Mapping[str, Any]) -> str:
    return f"action {r['action']}, score {_num(r['score'])}, threshold {_num(r['threshold'])}"


def _compare_reasons(
    recorded: Sequence[Mapping[str, Any]], replayed: Sequence[Reason], tolerance: float
) -> list[str]:
    before = [
        {
            "category": str(r.get("category", "")),
            "scorer": str(r.get("scorer", "")),
            "action": _action(r.get("action", "")),
            "score": r.get("score"),
            "threshold": r.get("threshold"),
            **({"excerpt": r["excerpt"]} if "excerpt" in r else {}),
        }
        for r in recorded
    ]
    after = [_reason_record(r, excerpts=True) for r in replayed]
    # 1. identical reasons cancel out, wherever they are in either list
    for a in list(before):
        match = next((b for b in after if _same_reason(a, b, tolerance)), None)
        if match is not None:
            before.remove(a)
            after.remove(match)
    # 2. the rest pair up by (category, scorer), in order, and say which field changed
    diffs = []
    for a in list(before):
        match = next((b for b in after if (b["category"], b["scorer"]) == (a["category"], a["scorer"])), None)
        if match is None:
            continue
        before.remove(a)
        after.remove(match)
        changed = [
            f"{field} recorded {a[field]}, replayed {match[field]}"
            for field in ("action",)
            if a[field] != match[field]
        ]
        changed += [
            f"{field} recorded {_num(a[field])}, replayed {_num(match[field])}"
            for field in ("score", "threshold")
            if not _close(a[field], match[field], tolerance)
        ]
        if "excerpt" in a and a["excerpt"] != match["excerpt"]:
            changed.append("excerpt differs")
        diffs.append(f"reason {a['category']} ({a['scorer'] or '-'}): " + "; ".join(changed))
    diffs += [
        f"reason {a['category']} ({a['scorer'] or '-'}): recorded only ({_describe(a)})" for a in before
    ]
    diffs += [f"reason {b['category']} ({b['scorer'] or '-'}): replay only ({_describe(b)})" for b in after]
    return diffs


def _compare_checks(
    recorded: Sequence[Mapping[str, Any]], replayed: Sequence[IdentityCheck], tolerance: float
) -> list[str]:
    before = {str(c["category"]): c for c in recorded}
    after = {c.category: _check_record(c) for c in replayed}
    diffs = []
    for category in sorted(before.keys() | after.keys()):
        if category not in after or category not in before:
            where = "recorded only" if category in before else "replay only"
            diffs.append(f"identity check {category}: {where}")
            continue
        a, b = before[category], after[category]
        for field in ("original_score", "neutral_score", "threshold"):
            if not _close(a.get(field), b[field], tolerance):
                diffs.append(
                    f"identity check {category}: {field} recorded {a.get(field)}, replayed {b[field]:.4f}"
                )
        for field in ("softened", "terms_version"):
            if a.get(field) != b[field]:
                diffs.append(
                    f"identity check {category}: {field} recorded {a.get(field)!r}, replayed {b[field]!r}"
                )
        if list(a.get("substituted_terms", ())) != b["substituted_terms"]:
            diffs.append(f"identity check {category}: substituted terms differ")
    return diffs
