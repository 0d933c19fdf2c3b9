"""Real-shape, random-weight models for the gateway benchmark (nothing can be downloaded here).

- GPT-Neo-125M: `GPTNeoConfig` with EleutherAI/gpt-neo-125M's values (hidden 768, 12 layers, 12 heads,
  attention_types [[["global", "local"], 6]], vocabulary 50257, context 2048, window 256), randomly
  initialised. Its tokenizer is a word-level `tokenizers` model over exactly 50257 entries (end-of-text
  plus 50256 short lowercase "words"), wrapped in `PreTrainedTokenizerFast`: every id the random model
  emits decodes to a word, so the outputs moderation sees are ~64 words for 64 tokens, as with GPT-2's
  BPE on English. Training a byte-level BPE to 50257 entries needs a large corpus and minutes; the
  model's compute depends only on the vocabulary size and the sequence lengths, which are real here.
- detoxify: a BERT-base-shaped classifier (hidden 768, 12 layers, 12 heads, intermediate 3072,
  vocabulary 30522) in detoxify's checkpoint format (`moderation.testing`), whose vocabulary holds the
  GPT words of two and three letters as whole words (longer ones split into word pieces).
"""

from __future__ import annotations

import itertools
import json
import random
import string
from pathlib import Path
from typing import Any

END_OF_TEXT = "<|endoftext|>"
VOCAB = 50257


def words(count: int = VOCAB - 1) -> list[str]:
    """`count` distinct lowercase words: all of 2 and 3 letters, then 4-letter ones, in a fixed order."""
    letters = string.ascii_lowercase
    out: list[str] = []
    for size in (2, 3, 4):
        for combo in itertools.product(letters, repeat=size):
            out.append("".join(combo))
            if len(out) == count:
                return out
    raise ValueError("count too large")


def write_gpt_neo_125m(directory: Path, *, tiny: bool = False, seed: int = 0) -> Path:
    """Writes config, random weights and the word-level tokenizer; `tiny` for smoke runs."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPTNeoConfig, GPTNeoForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {END_OF_TEXT: 0, **{w: i + 1 for i, w in enumerate(words())}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=END_OF_TEXT))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT, unk_token=END_OF_TEXT
    )
    shape: dict[str, Any] = (
        {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "attention_types": [[["global", "local"], 1]]}
        if tiny
        else {
            "hidden_size": 768,
            "num_layers": 12,
            "num_heads": 12,
            "attention_types": [[["global", "local"], 6]],
        }
    )
    config = GPTNeoConfig(
        vocab_size=VOCAB,
        max_position_embeddings=2048,
        window_size=256,
        bos_token_id=0,
        eos_token_id=0,
        **shape,
    )
    torch.manual_seed(seed)
    model = GPTNeoForCausalLM(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "BENCH_MODEL.json").write_text(json.dumps({"random_weights": True, "seed": seed}) + "\n")
    return directory


def write_detoxify_base(directory: Path, *, tiny: bool = False) -> tuple[Path, Path]:
    """A BERT-base-shaped detoxify checkpoint (random weights); returns (checkpoint, config_dir)."""
    from moderation.testing import build_tiny_detoxify_checkpoint

    shape: dict[str, Any] = (
        {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "vocab_size": 2000}
        if tiny
        else {
            "hidden_size": 768,
            "num_layers": 12,
            "num_heads": 12,
            "intermediate_size": 3072,
            "vocab_size": 30522,
        }
    )
    short = [w for w in words() if len(w) <= 3]
    return build_tiny_detoxify_checkpoint(
        directory, max_position_embeddings=512, vocab_words=short[: shape["vocab_size"] - 100], **shape
    )


def prompts(count: int, tokens: int = 32, seed: int = 0) -> list[str]:
    """`count` prompts of exactly `tokens` tokens (one word is one token)."""
    rng = random.Random(seed)
    vocab = words()
    return [" ".join(rng.choice(vocab) for _ in range(tokens)) for _ in range(count)]


def moderation_table(checkpoint: Path | str, config_dir: Path | str, device: str, variant: str) -> dict:
    """The `[moderation]` table the gateway and the bare measurement both use: the production scorers
    (word list + detoxify `unbiased`), detoxify from the bench checkpoint, int8 or fp32."""
    return {
        "default_policy": "default",
        "scorers": [
            {"type": "profanity"},
            {
                "type": "detoxify",
                "model": "unbiased",
                "checkpoint": str(checkpoint),
                "huggingface_config_path": str(config_dir),
                "device": device,
                "quantize": variant == "int8",
            },
        ],
    }


def gateway_toml(settings: dict[str, object], moderation: dict) -> str:
    """TOML for `modgate serve --config` (JSON strings are valid TOML basic strings)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines += ["", "[moderation]", f"default_policy = {json.dumps(moderation['default_policy'])}"]
    for scorer in moderation["scorers"]:
        lines += ["", "[[moderation.scorers]]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in scorer.items()]
    return "\n".join(lines) + "\n"
