"""The word lists a recorded decision used, rebuilt for replay.

A decision records each scorer's version; a profanity scorer extended with stored lists names them in
its version (`...+lists-3.2,7.1`: list 3 at version 2, list 7 at version 1). Stored list versions are
immutable, so replay extends the loaded scorer with exactly those entries, whatever is attached now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from gateway.wordlists.serving import extended_by
from gateway.wordlists.store import snapshots
from moderation.moderator import Moderator
from moderation.scorers.profanity import ProfanityScorer, list_refs
from moderation.types import Scorer

__all__ = ["with_recorded_lists"]


def with_recorded_lists(
    *, session: Session, base: Moderator, recorded_scorers: Iterable[Mapping[str, Any]], notes: list[str]
) -> Moderator:
    """`base` with each profanity scorer extended by the list versions its recorded version names;
    `base` itself when the decision used no stored list. A list version not in this database leaves
    that scorer as loaded, with a note (the comparison then reports the scorer's version)."""
    wanted = {
        str(s.get("name")): refs for s in recorded_scorers if (refs := list_refs(str(s.get("version", ""))))
    }
    if not wanted:
        return base
    found = snapshots(session=session, refs=[ref for refs in wanted.values() for ref in refs])

    def replace(scorer: Scorer) -> Scorer:
        refs = wanted.get(scorer.name)
        if not refs or not isinstance(scorer, ProfanityScorer):
            return scorer
        missing = [ref for ref in refs if ref not in found]
        if missing:
            notes.append(
                f"scorer {scorer.name!r}: word list versions "
                f"{', '.join(f'{i}.{v}' for i, v in missing)} are not stored; replayed without its lists"
            )
            return scorer
        lists = [found[ref] for ref in refs]
        notes.append(
            f"scorer {scorer.name!r} replayed with its recorded word lists "
            + ", ".join(f"{s.name} v{s.version}" for s in lists)
        )
        return extended_by(scorer, lists)

    return base.with_scorers(replace)
