"""Incremental moderation of one text that arrives in pieces (the gateway's GenerateStream).

The rule: a character is sent only after it has been scored together with everything before it and with
enough complete words after it that no later text can change its verdict. Concretely `feed` holds back

- the unfinished last word (no whitespace after it yet): "ass" may still become "assessment";
- the last `right_context_words` complete words (more for scorers that ask, see `StreamHint`);
- a trailing run of single letters, which may be a spaced-out word still growing ("f u c"); a letter
  with invisible characters or marks attached ("f\u200b") counts as a single letter;
- any flagged span that would straddle the release point.

Masking is per character and length-preserving, so the prefix sent early equals the same prefix of the
final masked text. `finish` checks that, and holds the text if it ever did not hold.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Protocol

from moderation.folding import fold
from moderation.types import Action, Decision, Reason, Span

__all__ = ["StreamModerator", "StreamSettings", "release_point"]

_TOKEN = re.compile(r"\S+")
_SEPARATORS = "._-"


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """How a stream is released.

    right_context_words: complete words that must follow a chunk, and be scored with it, before it is sent.
    min_release_words: score again only once this many new complete words arrived (cost vs. latency).
    """

    right_context_words: int = 2
    min_release_words: int = 1

    def __post_init__(self) -> None:
        if self.right_context_words < 0 or self.min_release_words < 1:
            raise ValueError("right_context_words must be >= 0 and min_release_words >= 1")


class Moderates(Protocol):
    """What a stream needs of the moderator (`moderation.moderator.Moderator` is one): a protocol, so
    that the two modules do not import each other."""

    @property
    def stream_settings(self) -> StreamSettings: ...

    @property
    def stream_context_words(self) -> int: ...

    def policy(self, name: str | None = None) -> object: ...

    def moderate(
        self, texts: Sequence[str], *, policy: str | None = None, shadow: Sequence[str] | None = None
    ) -> list[Decision]: ...


class StreamModerator:
    """One stream's state. Not thread-safe: one generation task feeds it, in order."""

    def __init__(self, moderator: Moderates, *, policy: str, shadow: Sequence[str] | None = None) -> None:
        """Built by `Moderator.stream()`; `policy` must be a name the moderator knows. `shadow` is passed
        to the final `moderate` call only (None = the moderator's configured shadow policies)."""
        moderator.policy(policy)  # unknown name -> UnknownPolicyError now, not at the first feed
        self._moderator = moderator
        self._policy = policy
        self._shadow = None if shadow is None else tuple(shadow)
        settings = moderator.stream_settings
        self._context_words = max(settings.right_context_words, moderator.stream_context_words)
        self._min_release_words = settings.min_release_words
        self._buf = ""
        self._sent: list[str] = []
        self._sent_len = 0
        self._scored_words = 0
        self._stop_decision: Decision | None = None
        self._finished = False

    @property
    def stopped(self) -> bool:
        """True once the text so far would be held or blocked; `feed` then returns "" for good."""
        return self._stop_decision is not None

    @property
    def text(self) -> str:
        """Everything fed so far (the original, unmasked text: for storage, not for the client)."""
        return self._buf

    @property
    def sent_text(self) -> str:
        """Everything `feed` returned so far."""
        return "".join(self._sent)

    def feed(self, delta: str) -> str:
        """Append newly generated text; return the text that is now safe to send ("" if none yet)."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._buf += delta
        if self.stopped:
            return ""
        scored_end = _complete_end(self._buf)
        words = len(_TOKEN.findall(self._buf, 0, scored_end))
        if words - self._scored_words < self._min_release_words:
            return ""
        self._scored_words = words
        scored = self._buf[:scored_end]
        # Shadow policies judge the whole text in finish(); a prefix's shadow decisions would be noise.
        decision = self._moderator.moderate([scored], policy=self._policy, shadow=())[0]
        if not decision.releasable:
            self._stop_decision = decision
            return ""
        end = release_point(scored, decision.spans, context_words=self._context_words)
        if end <= self._sent_len:
            return ""
        chunk = decision.text[self._sent_len : end]
        self._sent.append(chunk)
        self._sent_len = end
        return chunk

    def finish(self) -> tuple[str, Decision]:
        """Score the whole text. Returns what may still be sent ("" unless the whole text is releasable
        and the stream was not stopped) and the decision for the whole text.

        A stopped stream never ends with a releasable decision: the client did not get the whole text.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        decision = self._moderator.moderate([self._buf], policy=self._policy, shadow=self._shadow)[0]
        if self._stop_decision is not None:
            if decision.releasable:
                stop = self._stop_decision
                decision = dataclasses.replace(
                    decision,
                    action=stop.action,
                    text=decision.original_text,
                    reasons=stop.reasons + decision.reasons,
                    identity_checks=stop.identity_checks + decision.identity_checks,
                )
            return "", decision
        if not decision.releasable:
            return "", decision
        sent = self.sent_text
        if decision.text[: len(sent)] != sent:
            # Cannot happen with the hold-back rules above; if a scorer ever breaks them, a human looks.
            mismatch = Reason("stream_consistency", 1.0, 0.0, Action.HOLD, "", "stream")
            held = dataclasses.replace(
                decision,
                action=Action.HOLD,
                text=decision.original_text,
                reasons=(mismatch, *decision.reasons),
            )
            return "", held
        return decision.text[len(sent) :], decision


def _complete_end(text: str) -> int:
    """End of the last complete word: just after the last whitespace character (0 if there is none)."""
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            return i + 1
    return 0


def release_point(text: str, spans: Sequence[Span], *, context_words: int) -> int:
    """How much of `text` (complete words only, already scored) can be sent: see the module docstring."""
    tokens = [m.span() for m in _TOKEN.finditer(text)]
    if context_words >= len(tokens):
        return 0
    end = tokens[-context_words][0] if context_words else len(text)
    # A trailing run of one-character tokens may be a spaced-out word that is still growing.
    run_start = None
    # Counted on the folded token: "f\u200b" or "f\u0301" is one visible letter too.
    for start, stop in reversed(tokens):
        if len(fold(text[start:stop]).text.strip(_SEPARATORS)) > 1:
            break
        run_start = start
    if run_start is not None:
        end = min(end, run_start)
    # Never cut through a flagged span.
    moved = True
    while moved:
        moved = False
        for span in spans:
            if span.start < end < span.end:
                end, moved = span.start, True
    return end
