"""Runs GPT-Neo generation for one prompt: blocking calls, meant for a worker thread.

The generator knows sampling and decoding; it knows nothing of moderation or gRPC. Its text is
unmoderated and must never leave the server before the moderator has decided on it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from gateway.errors import Cancelled
from gateway.generation.model import LoadedModel
from gateway.generation.params import Limits, SamplingParams
from gateway.generation.stopping import CancelCriteria, StopMatcher, StopSequenceCriteria, find_stop


class FinishReason(enum.Enum):
    LENGTH = "length"
    END_OF_TEXT = "end_of_text"
    STOP_SEQUENCE = "stop_sequence"


@dataclass(frozen=True)
class GeneratedSequence:
    sequence_index: int
    text: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: FinishReason


class Generator:
    """One loaded model; serialises its own use with a lock because the seed is process-global."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    def limits(self, base: Limits) -> Limits:
        """Narrows the server's limits to what this model can do."""
        return Limits(
            **{
                **base.__dict__,
                "context_length": self.loaded.context_length,
                "vocab_size": self.loaded.vocab_size,
            }
        )

    def count_tokens(self, prompt: str) -> int:
        return len(self.loaded.tokenizer(prompt)["input_ids"])

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        tok = self.loaded.tokenizer
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "min_new_tokens": params.min_new_tokens,
            "do_sample": params.do_sample,
            "num_return_sequences": params.num_return_sequences,
            "repetition_penalty": params.repetition_penalty,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        else:
            # Defaults that make greedy decoding warning-free; sampling knobs are ignored in greedy mode.
            kwargs.update(temperature=1.0, top_p=1.0, top_k=50)
        return GenerationConfig(**kwargs)

    def _run(
        self,
        prompt: str,
        params: SamplingParams,
        should_stop: Callable[[], bool],
        streamer: BaseStreamer | None,
        stream_done: Callable[[], bool] | None = None,
    ) -> tuple[torch.Tensor, int]:
        """`should_stop` means the caller gave up (raises Cancelled); `stream_done` means the streamed
        text reached a stop sequence (a normal end)."""
        lm = self.loaded
        enc = lm.tokenizer(prompt, return_tensors="pt").to(lm.device)
        prompt_len = int(enc["input_ids"].shape[1])
        done = stream_done or (lambda: False)
        criteria = StoppingCriteriaList([CancelCriteria(lambda: should_stop() or done())])
        if params.stop:
            criteria.append(StopSequenceCriteria(lm.tokenizer, prompt_len, params.stop))
        with self._lock, torch.inference_mode():
            torch.manual_seed(params.seed)
            if lm.device == "cuda":
                torch.cuda.manual_seed_all(params.seed)
            out = lm.model.generate(
                **enc,
                generation_config=self._generation_config(params),
                stopping_criteria=criteria,
                streamer=streamer,
            )
        if should_stop():
            raise Cancelled("generation was stopped: the call was cancelled or its deadline passed")
        return out, prompt_len

    def _finish(
        self, index: int, row: torch.Tensor, prompt_len: int, stops: tuple[str, ...]
    ) -> GeneratedSequence:
        tok = self.loaded.tokenizer
        new = row[prompt_len:].tolist()
        eos = tok.eos_token_id
        ended = eos in new
        kept = new[: new.index(eos)] if ended else new
        text = tok.decode(kept, skip_special_tokens=True)
        cut = find_stop(text, stops) if stops else None
        if cut is not None:
            # Rows stopped by a stop sequence are padded with end-of-text afterwards: that is not
            # the model ending the text, and the pad is not a generated token.
            return GeneratedSequence(index, text[:cut], prompt_len, len(kept), FinishReason.STOP_SEQUENCE)
        if ended:
            return GeneratedSequence(index, text, prompt_len, len(kept) + 1, FinishReason.END_OF_TEXT)
        return GeneratedSequence(index, text, prompt_len, len(kept), FinishReason.LENGTH)

    def generate(
        self, prompt: str, params: SamplingParams, *, should_stop: Callable[[], bool]
    ) -> list[GeneratedSequence]:
        """All `num_return_sequences` sequences of one prompt. Blocking."""
        out, prompt_len = self._run(prompt, params, should_stop, None)
        return [self._finish(i, row, prompt_len, params.stop) for i, row in enumerate(out)]

    def generate_stream(
        self,
        prompt: str,
        params: SamplingParams,
        *,
        on_text: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> GeneratedSequence:
        """One sequence; `on_text` receives its text in order as it is decoded, already cut at the first
        stop sequence, so that the concatenation equals the returned text. Blocking."""
        matcher = StopMatcher(params.stop)
        streamer = _DeltaStreamer(self.loaded.tokenizer, lambda delta: on_text(matcher.feed(delta)))
        out, prompt_len = self._run(prompt, params, should_stop, streamer, lambda: matcher.stopped)
        final = self._finish(0, out[0], prompt_len, params.stop)
        rest = streamer.flush_text()
        tail = matcher.feed(rest) + matcher.flush()
        if tail:
            on_text(tail)
        return final


class _DeltaStreamer(BaseStreamer):
    """Turns generated token ids into text deltas, holding back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any, on_delta: Callable[[str], None]) -> None:
        self._tokenizer = tokenizer
        self._on_delta = on_delta
        self._ids: list[int] = []
        self._sent = 0
        self._prompt_seen = False
        self._ended = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # the first call carries the prompt
            self._prompt_seen = True
            return
        if self._ended:
            return
        ids = value.reshape(-1).tolist()
        eos = self._tokenizer.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos)]
            self._ended = True
        self._ids.extend(ids)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        stable = len(text.rstrip("\ufffd")) if not self._ended else len(text)
        if stable > self._sent:
            delta = text[self._sent : stable]
            self._sent = stable
            self._on_delta(delta)

    def end(self) -> None:
        pass

    def flush_text(self) -> str:
        """Whatever was held back (a trailing partial character), released once generation ended."""
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        rest = text[self._sent :]
        self._sent = len(text)
        return rest
