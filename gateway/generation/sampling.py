"""Choosing each next token for one request, and deciding when one of its rows has ended.

The dynamic batcher (`gateway/generation/batcher.py`) runs one forward pass for many requests at once,
each with its own sampling parameters. This module holds what is per request:

- `RequestSampler` applies the request's logits processors and draws from its own `torch.Generator`,
  seeded with the request's seed. The operations and their order are those of transformers'
  `generate` (repetition penalty, min_new_tokens, temperature, top-k, top-p, softmax, multinomial), and
  the generator is consumed exactly as `generate` consumes the global one after `torch.manual_seed(seed)`,
  so a seeded request gives the text that `Generator.generate` gives, whatever else shares its batch.
- `RowText` follows one row's generated tokens as text: stop sequences, streamed deltas (held back at
  an incomplete UTF-8 character and at a possible stop-sequence prefix), and the final
  `GeneratedSequence` with the same fields and finish reasons as `Generator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from gateway.generation.generator import FinishReason, GeneratedSequence
from gateway.generation.params import SamplingParams
from gateway.generation.stopping import StopMatcher, find_stop


class RequestSampler:
    """The next tokens of one request's rows (all rows of a request share its parameters and generator).

    Why one generator per request and not per row: `generate` draws the `num_return_sequences` rows of a
    prompt with one `multinomial` call; doing the same keeps seeded output identical to the unbatched
    path. The rows of one request always have the same length (they step together), so their token ids
    form one rectangular tensor for the repetition penalty.
    """

    def __init__(
        self,
        params: SamplingParams,
        *,
        eos_token_id: int,
        device: str | torch.device,
        suppress_token_ids: Sequence[int] = (),
    ) -> None:
        """`suppress_token_ids`: never chosen (`LoadedModel.nul_token_ids`); `Generator` passes the same
        ids to `generate` as `suppress_tokens`, so both paths still give the same text."""
        self.params = params
        self._eos = eos_token_id
        self._suppress = tuple(suppress_token_ids)
        # Per "is end-of-text blocked": the mask of tokens set to -inf, built at the first step (it needs
        # the vocab size), None when nothing is blocked.
        self._masks: dict[bool, torch.Tensor | None] = {}
        self._generator: torch.Generator | None = None
        if params.do_sample:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(params.seed)

    @property
    def needs_token_ids(self) -> bool:
        """Only the repetition penalty looks at the tokens so far; others need only the scores."""
        return self.params.repetition_penalty != 1.0

    def choose(self, token_ids: torch.Tensor | None, logits: torch.Tensor, generated: int) -> torch.Tensor:
        """`logits`: float32 [rows, vocab] for this request's rows; `token_ids`: [rows, prompt+generated]
        (required when `needs_token_ids`); `generated`: new tokens so far. Returns [rows] token ids."""
        scores = self.process(token_ids, logits, generated)
        if self._generator is None:
            return torch.argmax(scores, dim=-1)
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=self._generator).squeeze(1)

    def _blocked(self, scores: torch.Tensor, *, eos: bool) -> torch.Tensor | None:
        """The tokens MinNewTokensLength (`eos`) and SuppressTokens set to -inf, as one cached mask: both
        processors write the same -inf, so one `where` gives their result bitwise, without building a
        vocabulary-sized mask at every step."""
        if eos not in self._masks:
            ids = [i for i in self._suppress if i < scores.shape[-1]]  # ids past the logits: ignored,
            if eos:  # as `generate` does (tokens added to the tokenizer only)
                ids.append(self._eos)
            mask = None
            if ids:
                mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
                mask[ids] = True
            self._masks[eos] = mask
        return self._masks[eos]

    def process(self, token_ids: torch.Tensor | None, scores: torch.Tensor, generated: int) -> torch.Tensor:
        """The processed scores, mirroring transformers' processors op for op (so results are bitwise
        equal): RepetitionPenalty, MinNewTokensLength, SuppressTokens, then for sampling Temperature,
        TopK, TopP."""
        p = self.params
        if p.repetition_penalty != 1.0:
            if token_ids is None:
                raise ValueError("the repetition penalty needs the token ids so far")
            score = torch.gather(scores, 1, token_ids)
            score = torch.where(score < 0, score * p.repetition_penalty, score / p.repetition_penalty)
            scores = scores.scatter(1, token_ids, score)
        blocked = self._blocked(scores, eos=generated < p.min_new_tokens)
        if blocked is not None:
            scores = torch.where(blocked, -torch.inf, scores)
        if not p.do_sample:
            return scores
        if p.temperature != 1.0:
            scores = scores / p.temperature
        if p.top_k != 0:
            k = min(max(p.top_k, 1), scores.size(-1))
            scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], -torch.inf)
        if p.top_p < 1.0:
            sorted_logits, sorted_indices = torch.sort(scores, descending=False)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            remove = cumulative <= (1 - p.top_p)
            remove[..., -1:] = 0
            scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -torch.inf)
        return scores


class RowText:
    """One generated row as text: finds stop sequences, emits stream deltas, builds the result.

    `on_text` (streaming only) receives deltas already cut at the first stop sequence, so that their
    concatenation equals the final text.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        index: int,
        prompt_tokens: int,
        stops: Sequence[str],
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self.index = index
        self._prompt_tokens = prompt_tokens
        self._stops = tuple(stops)
        # Only the tail can hold a new match: decode a window that covers the longest stop sequence
        # (the rule of `StopSequenceCriteria`, so rows stop at the same token as before).
        self._window = max((len(s) for s in self._stops), default=0) + 8
        self._on_text = on_text
        self._matcher = StopMatcher(self._stops) if on_text is not None else None
        self._sent = 0
        self.ids: list[int] = []
        self.ended_by_eos = False

    @property
    def generated(self) -> int:
        return len(self.ids) + (1 if self.ended_by_eos else 0)

    def add(self, token: int, eos: int) -> bool:
        """Appends one token; True when the row has ended (end of text or a stop sequence)."""
        if token == eos:
            self.ended_by_eos = True
            self._stream(final=True)
            return True
        self.ids.append(token)
        if self._matcher is not None:
            self._stream(final=False)
            return self._matcher.stopped
        if self._stops:
            tail = self._tokenizer.decode(self.ids[-self._window :], skip_special_tokens=True)
            return find_stop(tail, self._stops) is not None
        return False

    def _stream(self, *, final: bool) -> None:
        """Passes on the newly stable text; held back: a trailing incomplete character (until the end)."""
        if self._matcher is None or self._on_text is None:
            return
        text = self._tokenizer.decode(self.ids, skip_special_tokens=True)
        stable = len(text) if final else len(text.rstrip("\ufffd"))
        if stable > self._sent:
            delta = text[self._sent : stable]
            self._sent = stable
            out = self._matcher.feed(delta)
            if out:
                self._on_text(out)

    def finish(self) -> GeneratedSequence:
        """The result; for a stream, first releases what was held back (nothing more can follow)."""
        if self._matcher is not None and self._on_text is not None:
            text = self._tokenizer.decode(self.ids, skip_special_tokens=True)
            rest = text[self._sent :]
            self._sent = len(text)
            tail = self._matcher.feed(rest) + self._matcher.flush()
            if tail:
                self._on_text(tail)
        return finish_sequence(
            self._tokenizer, self.index, self.ids, self._prompt_tokens, self._stops, self.ended_by_eos
        )


def finish_sequence(
    tokenizer: Any, index: int, kept: list[int], prompt_tokens: int, stops: Sequence[str], ended: bool
) -> GeneratedSequence:
    """The same rules as `Generator._finish`: text cut at the first stop sequence; the end-of-text token
    counts as generated, a stop sequence's trailing padding does not."""
    text = tokenizer.decode(kept, skip_special_tokens=True)
    cut = find_stop(text, stops) if stops else None
    if cut is not None:
        return GeneratedSequence(index, text[:cut], prompt_tokens, len(kept), FinishReason.STOP_SEQUENCE)
    if ended:
        return GeneratedSequence(index, text, prompt_tokens, len(kept) + 1, FinishReason.END_OF_TEXT)
    return GeneratedSequence(index, text, prompt_tokens, len(kept), FinishReason.LENGTH)
