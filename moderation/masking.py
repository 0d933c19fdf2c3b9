"""Masking: replace the letters of flagged spans, leave every other character of the text as it was.

Masking is length-preserving per character (one mask character per replaced character), so offsets stay
valid after masking and a streamed prefix masked early is identical to the same prefix masked at the end.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from moderation.types import Span

__all__ = ["MaskStyle", "Masker", "merge_spans"]

# Characters kept inside a span: whitespace and the separators of spaced-out words ("f u c k" -> "f * * *").
_KEEP = frozenset("._-")


class MaskStyle(enum.StrEnum):
    KEEP_FIRST = "keep_first"  # "fuck" -> "f***": readers see a word was masked, and roughly which
    FULL = "full"  # "fuck" -> "****"


def merge_spans(spans: Iterable[Span]) -> list[tuple[int, int]]:
    """Overlapping spans become one interval, so that "keep_first" keeps one letter per flagged stretch."""
    merged: list[list[int]] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if span.end <= span.start:
            continue
        if merged and span.start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    return [(a, b) for a, b in merged]


class Masker:
    """Replaces each maskable character of each span with `char`; `style` says whether to keep the first."""

    def __init__(self, *, style: MaskStyle | str = MaskStyle.KEEP_FIRST, char: str = "*") -> None:
        """`char` must be one character: masking must not change the text's length."""
        if len(char) != 1 or char.isspace() or char in _KEEP:
            raise ValueError(f"mask char must be one visible character, not {char!r}")
        self.style = MaskStyle(style)
        self.char = char

    def mask(self, text: str, spans: Iterable[Span]) -> str:
        """The text with span letters replaced; characters outside spans are returned untouched."""
        intervals = merge_spans(spans)
        if not intervals:
            return text
        out: list[str] = []
        pos = 0
        for start, end in intervals:
            start, end = max(start, pos), min(end, len(text))
            if start >= end:
                continue
            out.append(text[pos:start])
            out.append(self._mask_stretch(text[start:end]))
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def _mask_stretch(self, stretch: str) -> str:
        keep_next = self.style is MaskStyle.KEEP_FIRST
        chars = []
        for ch in stretch:
            if ch.isspace() or ch in _KEEP:
                chars.append(ch)
            elif keep_next:
                chars.append(ch)
                keep_next = False
            else:
                chars.append(self.char)
        return "".join(chars)
