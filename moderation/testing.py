"""Helpers for tests and demos, shipped with the library because the gateway's tests need them too.

- `KeywordScorer`: deterministic scores from keywords, to drive every policy action without a model.
- `build_tiny_detoxify_checkpoint`: a tiny BERT in detoxify's own checkpoint format, so that the real
  `Detoxify` class (and `DetoxifyScorer`) can run offline with no downloaded weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from moderation.scorers.base import BaseScorer
from moderation.types import ScoreResult, Span

__all__ = ["JIGSAW_CLASSES", "KeywordScorer", "build_tiny_detoxify_checkpoint"]

# The label names as detoxify's checkpoints store them (detoxify renames toxic -> toxicity, ...).
JIGSAW_CLASSES = (
    "toxic",
    "severe_toxic",
    "obscene",
    "threat",
    "insult",
    "identity_hate",
    "sexual_explicit",
)
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_BASIC_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "if",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "with",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "i",
    "you",
    "he",
    "she",
    "it",
    "we",
    "they",
    "me",
    "him",
    "her",
    "us",
    "them",
    "my",
    "your",
    "his",
    "our",
    "their",
    "this",
    "that",
    "these",
    "those",
    "what",
    "who",
    "how",
    "why",
    "when",
    "where",
    "not",
    "no",
    "yes",
    "very",
    "good",
    "bad",
    "great",
    "nice",
    "day",
    "game",
    "fine",
    "love",
    "hate",
    "kill",
    "hurt",
    "stupid",
    "idiot",
    "fool",
    "shit",
    "fuck",
    "damn",
    "hell",
    "ass",
    "bitch",
    "will",
    "would",
    "can",
    "could",
    "should",
    "go",
    "come",
    "see",
    "say",
    "make",
    "think",
    "know",
    "want",
    "like",
    "people",
    "man",
    "woman",
    "friend",
    "family",
    "today",
    "tomorrow",
    "here",
    "there",
    "now",
    "then",
    "again",
    "really",
    "so",
    "too",
    "much",
    "many",
    "more",
    "most",
    "some",
    "any",
    "all",
    "every",
]


class KeywordScorer(BaseScorer):
    """Score `hit` (1.0) in a category when one of its keywords occurs as a whole word (case-insensitive),
    with a span on each occurrence; `miss` (0.0) otherwise. For tests and demos only: it knows nothing
    about language."""

    def __init__(
        self,
        keywords: Mapping[str, Sequence[str]],
        *,
        name: str = "keyword",
        emit_spans: bool = False,
        hit: float = 1.0,
        miss: float = 0.0,
    ) -> None:
        """`keywords` maps a category to its words; `emit_spans` also returns spans in that category;
        `hit` / `miss` are the scores with / without a keyword (a model-like 0.95 / 0.1 for thresholds)."""
        self._name = name
        self._emit_spans = emit_spans
        self._hit, self._miss = float(hit), float(miss)
        self._patterns = {
            category: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
            for category, words in keywords.items()
            if words
        }
        scored: dict[str, object] = {c: sorted(w) for c, w in keywords.items()}
        if (self._hit, self._miss) != (1.0, 0.0):  # versions of plain keyword scorers stay as they were
            scored["(hit, miss)"] = [self._hit, self._miss]
        blob = json.dumps(scored, sort_keys=True)
        self._version = "keyword-" + hashlib.sha256(blob.encode()).hexdigest()[:12]
        self.calls: list[list[str]] = []

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        """Records each call's texts in `calls`, empty ones too (so tests can check batching and what was
        scored)."""
        self.calls.append(list(texts))
        return super().score(texts)

    def _score(self, texts: list[str]) -> list[ScoreResult]:
        results = []
        for text in texts:
            scores: dict[str, float] = {}
            spans: list[Span] = []
            for category, pattern in self._patterns.items():
                hits = list(pattern.finditer(text))
                scores[category] = self._hit if hits else self._miss
                if self._emit_spans:
                    spans += [Span(m.start(), m.end(), category, self._name) for m in hits]
            results.append(ScoreResult(scores=scores, spans=tuple(spans)))
        return results


def build_tiny_detoxify_checkpoint(
    directory: str | Path,
    *,
    classes: Sequence[str] = JIGSAW_CLASSES,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 128,
    vocab_words: Iterable[str] | None = None,
    vocab_size: int | None = None,
    classifier_bias: float = 0.0,
    model_type: str | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a randomly initialised BERT classifier in detoxify's checkpoint format.

    Returns `(checkpoint_path, config_dir)`, to pass as `DetoxifyScorer(checkpoint=..., huggingface_config_
    path=...)` or `Detoxify(checkpoint=..., huggingface_config_path=...)`. The config dir holds the BERT
    config and a WordPiece tokenizer; `arch.args.model_type` points at it because detoxify always calls
    `from_pretrained(model_type)`, which offline must be a local directory. `vocab_size` pads the
    vocabulary with synthetic word pieces (the benchmark uses 30522, BERT-base's size); `classifier_bias`
    is added to the classifier's bias (tests use it to show the checkpoint's weights are really used);
    `model_type` overrides the config directory as `arch.args.model_type` (e.g. "bert-base-uncased", as in
    the released checkpoints, which does not load offline).
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    root = Path(directory)
    config_dir = root / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    words = list(dict.fromkeys([*_SPECIAL, *(vocab_words or _BASIC_WORDS), *"abcdefghijklmnopqrstuvwxyz"]))
    words += [c for c in ".,!?'\"-*$@0123456789" if c not in words]
    if vocab_size is not None:
        letters = "abcdefghijklmnopqrstuvwxyz"
        n = 0
        while len(words) < vocab_size:
            piece = letters[n % 26] + letters[(n // 26) % 26] + (letters[n // 676 % 26] if n >= 676 else "")
            words.append(("##" if n % 2 else "") + piece + str(n // 17576 or ""))
            n += 1
        words = list(dict.fromkeys(words))[:vocab_size]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=max_position_embeddings)
    tokenizer.save_pretrained(str(config_dir))
    config = BertConfig(  # type: ignore[call-arg]  # num_labels & co. are PretrainedConfig kwargs
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        num_labels=len(classes),
        problem_type="multi_label_classification",
    )
    config.save_pretrained(str(config_dir))
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    state_dict = model.state_dict()
    state_dict["classifier.bias"] = state_dict["classifier.bias"] + classifier_bias
    checkpoint = {
        "config": {
            "arch": {
                "args": {
                    "model_type": model_type or str(config_dir),
                    "model_name": "BertForSequenceClassification",
                    "tokenizer_name": "BertTokenizer",
                    "num_classes": len(classes),
                }
            },
            "dataset": {"args": {"classes": list(classes)}},
        },
        "state_dict": state_dict,
    }
    path = root / "tiny-detoxify.ckpt"
    torch.save(checkpoint, path)
    return path, config_dir
