"""Ending generation early: stop sequences, cancelled clients, passed deadlines.

Stop sequences are matched on decoded text, not on token ids, because one string can be tokenised many
ways; the text is then cut before the first match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from transformers import StoppingCriteria


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop sequence in `text`, or None."""
    positions = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(positions) if positions else None


class StopSequenceCriteria(StoppingCriteria):
    """Marks a row done as soon as its generated text contains a stop sequence."""

    def __init__(self, tokenizer: Any, prompt_length: int, stops: Sequence[str]) -> None:
        self._tokenizer = tokenizer
        self._prompt_length = prompt_length
        self._stops = tuple(stops)
        # Only the tail can hold a new match: decode a window that covers the longest stop sequence.
        self._window = max(len(s) for s in stops) + 8

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        generated = input_ids[:, self._prompt_length :]
        tail = generated[:, -self._window :]
        texts = self._tokenizer.batch_decode(tail, skip_special_tokens=True)
        done = [find_stop(t, self._stops) is not None for t in texts]
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))


class CancelCriteria(StoppingCriteria):
    """Stops every row when the caller says so (client cancelled, deadline passed, server stopping)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self._should_stop = should_stop

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        stop = self._should_stop()
        full = torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, full)


class StopMatcher:
    """Cuts a growing text at the first stop sequence, holding back a tail that could still become one.

    Used by streaming: text is passed on only once no stop sequence can start inside it.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._text = ""
        self._sent = 0
        self.stopped = False

    def feed(self, delta: str) -> str:
        """Adds `delta`; returns the text that is now certainly before any stop sequence."""
        if self.stopped:
            return ""
        self._text += delta
        cut = find_stop(self._text, self._stops)
        if cut is not None:
            self.stopped = True
            return self._take(cut)
        return self._take(max(self._sent, len(self._text) - self._hold))

    def flush(self) -> str:
        """At the end of generation nothing more can complete a stop sequence: release the rest."""
        return "" if self.stopped else self._take(len(self._text))

    def _take(self, upto: int) -> str:
        out = self._text[self._sent : upto]
        self._sent = max(self._sent, upto)
        return out
