"""Writes a tiny GPT-Neo with random weights, so that the gateway can be tried and tested offline.

Real weights cannot be downloaded on every machine. The demo model has the real architecture and the
real loading path (`from_pretrained` on a directory), only tiny and untrained; a marker file makes the
server announce loudly that its text is random.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DEMO_MARKER = "MODGATE_DEMO_MODEL.json"
END_OF_TEXT = "<|endoftext|>"


def demo_corpus() -> list[str]:
    text = resources.files("gateway.generation").joinpath("data/demo_corpus.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def write_demo_model(directory: str | Path, *, vocab_size: int = 1000, seed: int = 0) -> Path:
    """Creates DIR with config, random weights (fixed seed: the same files every time) and a BPE
    tokenizer trained on the shipped corpus. Returns the directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Tokenizer, GPTNeoConfig, GPTNeoForCausalLM

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(demo_corpus(), trainer=trainer)
    tokenizer = GPT2Tokenizer(
        tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT
    )
    eos_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    assert isinstance(eos_id, int)  # one token in, one id out

    config = GPTNeoConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        attention_types=[[["global", "local"], 1]],
        max_position_embeddings=2048,
        window_size=256,
        intermediate_size=256,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
    )
    torch.manual_seed(seed)
    model = GPTNeoForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / DEMO_MARKER).write_text(
        json.dumps(
            {
                "warning": "random weights: this model is for trials and tests only",
                "seed": seed,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
            indent=2,
        )
        + "\n"
    )
    return out
