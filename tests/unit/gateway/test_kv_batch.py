"""Chunked prefill (`PendingPrefill`) gives the state a one-pass prefill gives: same logits to fp32
rounding and the same greedy continuation, with left padding and prompts longer than GPT-Neo's local
attention window (256 on the demo model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gateway.generation.kv_batch import BatchState, PendingPrefill
from gateway.generation.model import LoadedModel, load_model


@pytest.fixture(scope="module")
def lm(demo_model_dir: Path) -> LoadedModel:
    return load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32")


def greedy(model: object, state: BatchState, logits: torch.Tensor, steps: int) -> list[list[int]]:
    out = []
    for _ in range(steps):
        state.next_tokens = logits.argmax(-1)
        out.append(state.next_tokens.tolist())
        logits = state.step(model)
    return out


@pytest.mark.parametrize("chunk", [7, 64, 256])
def test_chunked_prefill_equals_one_pass(lm: LoadedModel, chunk: int) -> None:
    tok = lm.tokenizer
    long_prompt = tok("The garden was quiet and the rain fell on the old stone wall. " * 30)["input_ids"][
        :300
    ]
    prompts = [long_prompt, tok("Once upon a time")["input_ids"], long_prompt[:131]]
    assert len(long_prompt) == 300 > lm.model.config.window_size
    rows = [1, 2, 1]
    with torch.inference_mode():
        whole, whole_logits = BatchState.prefill(lm.model, prompts, rows, pad_token_id=tok.pad_token_id)
        pending = PendingPrefill.of(prompts, rows, pad_token_id=tok.pad_token_id, device=lm.model.device)
        advances = 0
        while (done := pending.advance(lm.model, chunk)) is None:
            advances += 1
        chunked, chunked_logits = done
        assert advances == -(-300 // chunk) - 1  # every chunk but the last returned None
        torch.testing.assert_close(chunked_logits, whole_logits, rtol=1e-4, atol=1e-4)
        assert torch.equal(chunked.mask, whole.mask) and torch.equal(chunked.positions, whole.positions)
        assert greedy(lm.model, chunked, chunked_logits, 12) == greedy(lm.model, whole, whole_logits, 12)


def test_a_step_without_padding_passes_no_mask_and_gives_the_same_logits(lm: LoadedModel) -> None:
    """Unpadded rows step without an attention mask (the model's causal mask is the same mask); the
    logits equal those of the step given the all-ones mask, bitwise, also past the local window."""
    tok = lm.tokenizer
    prompt = tok("The garden was quiet and the rain fell on the old stone wall. " * 30)["input_ids"][:270]
    assert len(prompt) > lm.model.config.window_size
    seen: list[object] = []

    def spy(**kwargs: object) -> object:
        seen.append(kwargs["attention_mask"])
        return lm.model(**kwargs)

    def masked(**kwargs: object) -> object:  # the step as it was: always the explicit mask
        rows, length = kwargs["input_ids"].shape[0], kwargs["cache"].get_seq_length() + 1  # type: ignore[attr-defined]
        kwargs["attention_mask"] = torch.ones(rows, length, dtype=torch.long)
        return lm.model(**kwargs)

    with torch.inference_mode():
        states = []
        for _ in range(2):
            state, logits = BatchState.prefill(
                lm.model, [prompt, prompt], [1, 1], pad_token_id=tok.pad_token_id
            )
            state.next_tokens = logits.argmax(-1)
            states.append(state)
        for _ in range(3):
            fast, slow = states[0].step(spy), states[1].step(masked)
            assert torch.equal(fast, slow)
            for state in states:
                state.next_tokens = fast.argmax(-1)
        assert seen == [None, None, None]
        padded, logits = BatchState.prefill(
            lm.model, [prompt, prompt[:5]], [1, 1], pad_token_id=tok.pad_token_id
        )
        padded.next_tokens = logits.argmax(-1)
        padded.step(spy)
    assert isinstance(seen[-1], torch.Tensor) and seen[-1].shape == (2, len(prompt) + 1)


def test_the_padding_check_reads_the_mask_once_per_change(
    lm: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mask.all()` is a device-to-host sync on a GPU: read once when rows join or leave, not per step."""
    tok = lm.tokenizer
    short = tok("The rain fell")["input_ids"]
    long = tok("The garden was quiet and the rain fell")["input_ids"]
    reads: list[int] = []
    real_all = torch.Tensor.all

    def counting_all(self: torch.Tensor, *args: object, **kwargs: object) -> object:
        reads.append(1)
        return real_all(self, *args, **kwargs)

    with torch.inference_mode():
        state, logits = BatchState.prefill(lm.model, [long], [1], pad_token_id=tok.pad_token_id)
        state.next_tokens, state.rows = logits.argmax(-1), ["long"]
        monkeypatch.setattr(torch.Tensor, "all", counting_all)
        per_step = []
        for _ in range(4):
            before = len(reads)
            state.next_tokens = state.step(lm.model).argmax(-1)
            per_step.append(len(reads) - before)
        assert per_step[0] == per_step[1] + 1 and per_step[1:] == [per_step[1]] * 3
        assert state.padding_free()
        joining, first = BatchState.prefill(lm.model, [short], [1], pad_token_id=tok.pad_token_id)
        joining.next_tokens, joining.rows = first.argmax(-1), ["short"]
        state.merge(joining)  # the shorter row is left-padded: a new mask, read again
        assert not state.padding_free()
        before = len(reads)
        state.step(lm.model)
        state.step(lm.model)
        assert len(reads) - before == 2 * per_step[1]
        assert not state.padding_free()
