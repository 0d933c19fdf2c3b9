"""No generated text holds NUL, on either decoding path, and the two paths still agree.

PostgreSQL's text type refuses NUL: an output holding one could not be recorded, the client got INTERNAL
and the output was lost. The demo model is made to prefer its NUL token (a large bias on that logit), so
an unsuppressed decoder would emit it at every step.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import torch

from gateway.generation.batcher import Batcher
from gateway.generation.generator import Generator
from gateway.generation.model import LoadedModel
from gateway.generation.params import SamplingParams
from gateway.generation.sampling import RequestSampler
from tests.support.nul_model import nul_loving_model

NEVER = lambda: False  # noqa: E731
CASES = [
    SamplingParams(do_sample=False, max_new_tokens=12),
    SamplingParams(seed=4, max_new_tokens=12),
    SamplingParams(seed=8, max_new_tokens=12, top_k=0, top_p=0.9, temperature=0.8, num_return_sequences=2),
    SamplingParams(seed=6, max_new_tokens=12, repetition_penalty=1.3),
]


@pytest.fixture(scope="module")
def nul_loving(demo_model_dir: Path) -> LoadedModel:
    return nul_loving_model(demo_model_dir)


def test_the_nul_token_is_found(nul_loving: LoadedModel) -> None:
    (nul,) = nul_loving.nul_token_ids
    assert nul_loving.tokenizer.decode([nul]) == "\x00"


def test_the_sampler_never_picks_a_suppressed_token() -> None:
    logits = torch.zeros(2, 10)
    logits[:, 3] = 100.0
    for params in (SamplingParams(do_sample=False), SamplingParams(seed=1)):
        sampler = RequestSampler(params, eos_token_id=9, device="cpu", suppress_token_ids=(3,))
        assert all(int(t) != 3 for _ in range(20) for t in sampler.choose(None, logits, 5))


@pytest.mark.parametrize("params", CASES, ids=["greedy", "seeded", "top-p-two", "repetition"])
def test_no_nul_in_generated_text_and_batched_equals_unbatched(
    nul_loving: LoadedModel, params: SamplingParams
) -> None:
    generator = Generator(nul_loving)
    reference = generator.generate("The meaning of life is", params, should_stop=NEVER)
    assert all("\x00" not in s.text for s in reference)
    assert all(s.generated_tokens > 0 for s in reference)
    batcher = Batcher(generator, max_batch_size=8, max_wait_ms=10.0, max_queue=8)
    try:
        batched = asyncio.run(
            batcher.generate("The meaning of life is", params, cancel=threading.Event(), should_stop=NEVER)
        )
    finally:
        batcher.shutdown()
    assert batched == reference
