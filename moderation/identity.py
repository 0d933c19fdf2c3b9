"""The identity-term check: does a text score high because it attacks people, or because it names them?

Toxicity classifiers trained on Jigsaw comments give "I am a gay black woman" a higher toxicity and
identity-attack score than "I am a tall woman": identities that were often attacked in the training data
pull the score up by their mere mention. So when a checked category (identity_attack, toxicity) makes a
rule hold or block, the moderator scores the text again with every listed identity term replaced by a
neutral word ("muslims" -> "people"), using the scorers that produced that category. If the neutral text
scores below the threshold that fired, a block becomes a hold: a human decides. Nothing is ever released
by this check.

This module knows the terms and the substitution; `Moderator` does the re-scoring and `policy.evaluate`
applies the result (`NeutralScores`), so that the one evaluate function still explains every decision.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_SUBSTITUTE",
    "IdentityCheckSettings",
    "IdentityTerms",
    "NeutralScores",
    "NeutralText",
    "Substitution",
    "builtin_terms",
    "load_terms",
    "parse_terms",
]

DEFAULT_SUBSTITUTE = "person"
DEFAULT_CATEGORIES = ("identity_attack", "toxicity")
# A letter or digit (\w without the underscore): what a whole-word match must not touch on either side.
_ALNUM = r"[^\W_]"


def parse_terms(lines: Iterable[str], *, where: str = "identity terms") -> dict[str, str]:
    """`term = substitute` lines (`#` comments, blank lines ignored; no `=` means "person") -> a dict of
    lower-case terms (inner whitespace collapsed) to substitutes. Later lines override earlier ones."""
    terms: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        term, _, substitute = line.partition("=")
        term = " ".join(term.split()).lower()
        substitute = " ".join(substitute.split()) if "=" in line else DEFAULT_SUBSTITUTE
        if not term or not substitute:
            raise ValueError(f"{where}, line {number}: expected 'term = substitute', got {raw.strip()!r}")
        terms[term] = substitute
    return terms


def builtin_terms() -> dict[str, str]:
    """The shipped English list, `moderation/data/identity_terms_en.txt`."""
    text = resources.files("moderation").joinpath("data", "identity_terms_en.txt").read_text(encoding="utf-8")
    return parse_terms(text.splitlines(), where="identity_terms_en.txt")


def load_terms(path: str | Path) -> dict[str, str]:
    """An operator's list file, same format as the shipped one. OSError when it cannot be read."""
    return parse_terms(Path(path).read_text(encoding="utf-8").splitlines(), where=str(path))


@dataclass(frozen=True)
class Substitution:
    """One replaced term: `[start, end)` in the original text, `[new_start, new_end)` in the neutral one."""

    start: int
    end: int
    term: str  # the listed term (lower case), not the text as written
    replacement: str
    new_start: int
    new_end: int


@dataclass(frozen=True)
class NeutralText:
    """A text with its identity terms replaced, and enough bookkeeping to map offsets between the two."""

    original: str
    text: str
    substitutions: tuple[Substitution, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """The substituted terms, each once, in order of first occurrence."""
        return tuple(dict.fromkeys(s.term for s in self.substitutions))

    def map_span(self, start: int, end: int) -> tuple[int, int]:
        """Offsets `[start, end)` of the original text in the neutral text. A boundary inside a replaced
        term moves outwards to the replacement's edge, so a span never cuts a replacement in two."""
        return self._map(start, inside_to_end=False), self._map(end, inside_to_end=True)

    def _map(self, pos: int, *, inside_to_end: bool) -> int:
        delta = 0
        for s in self.substitutions:
            if pos <= s.start:
                break
            if pos >= s.end:
                delta = s.new_end - s.end
                continue
            return s.new_end if inside_to_end else s.new_start
        return pos + delta


class IdentityTerms:
    """A compiled term list. Matching is whole-word and case-insensitive; longer terms win ("african
    american" before "african"); the replacement takes the case style of what it replaces."""

    def __init__(self, terms: Mapping[str, str]) -> None:
        """`terms` maps a term (a word or phrase) to its neutral substitute; see `parse_terms`."""
        cleaned = {" ".join(t.split()).lower(): " ".join(s.split()) for t, s in terms.items()}
        if not cleaned or any(not t or not s for t, s in cleaned.items()):
            raise ValueError("identity terms must be a non-empty mapping of terms to non-empty substitutes")
        self._terms = MappingProxyType(dict(sorted(cleaned.items())))
        alternatives = sorted(self._terms, key=lambda t: (-len(t), t))
        body = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in alternatives)
        self._pattern = re.compile(rf"(?<!{_ALNUM})(?:{body})(?!{_ALNUM})", re.IGNORECASE)
        blob = json.dumps(dict(self._terms), sort_keys=True, separators=(",", ":"))
        self._version = "identity-terms-" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    @classmethod
    def builtin(cls, *, extra: Mapping[str, str] | None = None) -> IdentityTerms:
        """The shipped list, with `extra` terms added (or overriding a shipped term's substitute)."""
        return cls({**builtin_terms(), **(extra or {})})

    @property
    def terms(self) -> Mapping[str, str]:
        return self._terms

    @property
    def version(self) -> str:
        """Hash of the list, recorded on each IdentityCheck: a changed list can change a decision."""
        return self._version

    def neutralise(self, text: str) -> NeutralText:
        """Replace every listed term in `text`. Without any, the neutral text is the text itself."""
        out: list[str] = []
        subs: list[Substitution] = []
        pos = new_pos = 0
        for match in self._pattern.finditer(text):
            start, end = match.span()
            out.append(text[pos:start])
            new_pos += start - pos
            term = " ".join(match.group(0).split()).lower()
            replacement = _match_case(match.group(0), self._terms[term])
            out.append(replacement)
            subs.append(Substitution(start, end, term, replacement, new_pos, new_pos + len(replacement)))
            new_pos += len(replacement)
            pos = end
        out.append(text[pos:])
        return NeutralText(original=text, text="".join(out), substitutions=tuple(subs))


def _match_case(sample: str, replacement: str) -> str:
    letters = [c for c in sample if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return replacement.upper()
    if sample[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


@dataclass(frozen=True)
class IdentityCheckSettings:
    """Which categories are checked and against which term list (`[moderation.identity_check]`)."""

    terms: IdentityTerms = field(default_factory=IdentityTerms.builtin)
    categories: tuple[str, ...] = DEFAULT_CATEGORIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", tuple(dict.fromkeys(self.categories)))
        if not self.categories:
            raise ValueError("the identity check needs at least one category")


@dataclass(frozen=True)
class NeutralScores:
    """The evidence `policy.evaluate` needs: the neutral text's scores for the re-scored categories."""

    scores: Mapping[str, float]
    terms: tuple[str, ...]
    terms_version: str = ""
