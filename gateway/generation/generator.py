"""The loaded model as the rest of the gateway sees it, and plain `model.generate` for one prompt.

Serving goes through the dynamic batcher (`gateway/generation/batcher.py`), whose text equals what
`Generator.generate` gives for the same prompt, parameters and seed: this is the reference path (tests and
benchmarks compare against it). Its text is unmoderated and must never leave the server before the
moderator has decided on it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, StoppingCriteriaList

from gateway.errors import Cancelled
from gateway.generation.model import LoadedModel
from gateway.generation.params import Limits, SamplingParams
from gateway.generation.stopping import CancelCriteria, StopSequenceCriteria, find_stop


class FinishReason(enum.Enum):
    LENGTH = "length"
    END_OF_TEXT = "end_of_text"
    STOP_SEQUENCE = "stop_sequence"
    # Nothing was generated: prompt screening withheld the prompt (gateway/pipeline/core.py). Never released,
    # so no edge maps it to a client-visible finish reason.
    PROMPT_SCREENED = "prompt_screened"


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
        self._encode_lock = threading.Lock()

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

    def encode(self, prompt: str) -> list[int]:
        """The prompt's token ids. Callable from any thread: a fast tokenizer must not encode from two
        threads at once, so encodings take turns (a prompt of 32,000 characters takes milliseconds)."""
        with self._encode_lock:
            return list(self.loaded.tokenizer(prompt)["input_ids"])

    def count_tokens(self, prompt: str) -> int:
        return len(self.encode(prompt))

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
        if self.loaded.nul_token_ids:  # never NUL in a text (see LoadedModel.nul_token_ids)
            kwargs["suppress_tokens"] = list(self.loaded.nul_token_ids)
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
    ) -> tuple[torch.Tensor, int]:
        """`should_stop` means the caller gave up (raises Cancelled)."""
        lm = self.loaded
        enc = lm.tokenizer(prompt, return_tensors="pt").to(lm.device)
        prompt_len = int(enc["input_ids"].shape[1])
        criteria = StoppingCriteriaList([CancelCriteria(should_stop)])
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
        out, prompt_len = self._run(prompt, params, should_stop)
        return [self._finish(i, row, prompt_len, params.stop) for i, row in enumerate(out)]
