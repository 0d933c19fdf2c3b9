"""detoxify as a scorer: Jigsaw-trained BERT/RoBERTa/XLM-R classifiers, one score per toxicity label.

Loading goes through the real `detoxify.Detoxify` class: its own download on a connected machine, or a
local `checkpoint` (detoxify's .ckpt format) plus `huggingface_config_path` (config + tokenizer files)
offline. Scoring uses the loaded model and tokenizer directly rather than `Detoxify.predict`, because
predict truncates long texts at the model limit: here long texts are scored in overlapping token windows
and each label takes its maximum over the windows. For texts within the limit the scores equal
`predict`'s (tested).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from pathlib import Path
from typing import Any

from moderation.scorers.base import BaseScorer
from moderation.types import ScoreResult

__all__ = ["MODELS", "DetoxifyScorer", "ScorerLoadError", "localize_checkpoint", "quantize_linear_layers"]

# Labels per released model (the checkpoint's own list is what is used; this is for documentation/tests).
MODELS: dict[str, tuple[str, ...]] = {
    "original": ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"),
    "unbiased": (
        "toxicity",
        "severe_toxicity",
        "obscene",
        "threat",
        "insult",
        "identity_attack",
        "sexual_explicit",
    ),
    "multilingual": (
        "toxicity",
        "severe_toxicity",
        "obscene",
        "threat",
        "insult",
        "identity_attack",
        "sexual_explicit",
    ),
}


_OFFLINE_HINT = (
    "; offline, set checkpoint= (a detoxify .ckpt) and huggingface_config_path= "
    "(its config and tokenizer files)"
)


class ScorerLoadError(RuntimeError):
    """The model could not be loaded (no network for the download, a bad checkpoint, ...)."""


def resolve_device(device: str) -> str:
    """ "auto" means CUDA when present, else CPU (a GPU is much faster for BERT-size models)."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class DetoxifyScorer(BaseScorer):
    """Scores batches with a detoxify model; categories are the model's labels.

    Its version is the model name plus checkpoint hash (or the release file name), and "-int8" when
    quantized."""

    def __init__(
        self,
        *,
        model: str = "unbiased",
        checkpoint: str | Path | None = None,
        huggingface_config_path: str | Path | None = None,
        device: str = "auto",
        quantize: bool = False,
        batch_size: int = 16,
        window_overlap: int = 64,
        name: str = "detoxify",
    ) -> None:
        """Load once at start-up. Raises ScorerLoadError with a hint on how to load offline."""
        if model not in MODELS:
            raise ScorerLoadError(f"unknown detoxify model {model!r}; one of {', '.join(MODELS)}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        import torch
        from detoxify import Detoxify
        from detoxify.detoxify import MODEL_URLS

        self._torch = torch
        self._device = resolve_device(device)
        if quantize and self._device != "cpu":
            raise ScorerLoadError("quantize=true is for CPU inference only (int8 dynamic quantization)")
        try:
            detox = Detoxify(
                model_type=model,
                checkpoint=None if checkpoint is None else str(checkpoint),
                device=self._device,
                huggingface_config_path=None
                if huggingface_config_path is None
                else str(huggingface_config_path),
            )
        except Exception as exc:
            hint = "" if checkpoint else _OFFLINE_HINT
            raise ScorerLoadError(f"cannot load the model: {type(exc).__name__}: {exc}{hint}") from exc
        self._detoxify = detox
        self._tokenizer = detox.tokenizer
        net = detox.model.eval()
        if quantize:
            net = quantize_linear_layers(net)
        self._net = net
        self._quantized = quantize
        self._labels = tuple(detox.class_names)
        self._model_name = model
        self._name = name
        self._batch_size = batch_size
        self._lock = threading.Lock()  # fast tokenizers raise "Already borrowed" under concurrent use
        limit = min(
            int(getattr(self._tokenizer, "model_max_length", 512) or 512),
            int(getattr(net.config, "max_position_embeddings", 512)),
        )
        self._prefix, self._suffix = _special_tokens(self._tokenizer)
        self._window = limit - len(self._prefix) - len(self._suffix)
        self._step = max(1, self._window - min(window_overlap, self._window // 4))
        # the checkpoint's own hash, or the release file name (which carries detoxify's hash prefix)
        ident = _sha256(Path(checkpoint))[:12] if checkpoint is not None else Path(MODEL_URLS[model]).stem
        self._version = f"detoxify-{model}-{ident}" + ("-int8" if quantize else "")

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def device(self) -> str:
        return self._device

    @property
    def network(self) -> Any:
        """The torch module that scores (the quantized one with quantize=true). A caller may swap its
        layers for faster kernels that compute the same values (the gateway's `cpu_prepack`)."""
        return self._net

    @property
    def quantized(self) -> bool:
        return self._quantized

    @property
    def detoxify(self) -> Any:
        """The underlying `detoxify.Detoxify` object (tests compare against its `predict`)."""
        return self._detoxify

    def _score(self, texts: list[str]) -> list[ScoreResult]:
        """Scores for every label, per text. Windows are sorted by length so batches pad little.

        Only the tokenizer is behind the lock (a fast tokenizer raises "Already borrowed" when two
        threads use it at once); the network runs outside it, so that calls from several threads (the
        gateway splits a round over idle cores) compute at the same time."""
        torch = self._torch
        with self._lock:
            encoded = self._tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)[
                "input_ids"
            ]
        windows: list[tuple[int, list[int]]] = []
        for i, ids in enumerate(encoded):
            windows.extend((i, w) for w in self._split(ids))
        order = sorted(range(len(windows)), key=lambda k: len(windows[k][1]))
        probs = torch.zeros(len(windows), len(self._labels))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            features = [{"input_ids": [*self._prefix, *windows[k][1], *self._suffix]} for k in chunk]
            with self._lock:
                batch = self._tokenizer.pad(features, return_tensors="pt")
            batch = batch.to(self._device)
            with torch.inference_mode():
                logits = self._net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
            # a checkpoint may have more outputs than named labels; predict ignores the extra ones too
            probs[chunk] = torch.sigmoid(logits[:, : len(self._labels)].float()).cpu()
        best = torch.zeros(len(texts), len(self._labels))
        for k, (i, _) in enumerate(windows):
            best[i] = torch.maximum(best[i], probs[k])
        rows = best.tolist()
        return [ScoreResult(scores=dict(zip(self._labels, row, strict=True))) for row in rows]

    def _split(self, ids: list[int]) -> list[list[int]]:
        """Overlapping windows that fit the model (one window, possibly empty, for a short text)."""
        if len(ids) <= self._window:
            return [ids]
        out = []
        for start in range(0, len(ids), self._step):
            out.append(ids[start : start + self._window])
            if start + self._window >= len(ids):
                break
        return out


def localize_checkpoint(
    checkpoint: str | Path, config_dir: str | Path, out: str | Path | None = None
) -> Path:
    """Rewrite a detoxify checkpoint so that it loads offline from `config_dir`.

    Why: detoxify always calls `from_pretrained(model_type)` with the checkpoint's `model_type`
    ("roberta-base" in the released ones), which offline needs the Hugging Face cache. Pointing it at the
    absolute path of the local config directory removes that dependency. Writes `out` (default: next to
    the input, with a `.local.ckpt` suffix) and returns its path. Run it once on the serving machine.
    """
    import torch

    src = Path(checkpoint)
    loaded = torch.load(src, map_location="cpu", weights_only=False)
    if "config" not in loaded or "state_dict" not in loaded:
        raise ScorerLoadError(f"{src} is not a detoxify checkpoint (no 'config' and 'state_dict')")
    loaded["config"]["arch"]["args"]["model_type"] = str(Path(config_dir).resolve())
    dst = Path(out) if out is not None else src.with_suffix(".local.ckpt")
    torch.save(loaded, dst)
    return dst


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one sequence ([CLS] ... [SEP], <s> ... </s>), found by
    encoding a word with and without them (transformers 5 tokenizers have no build_inputs_... helper)."""
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return list(full[:i]), list(full[i + len(bare) :])
    raise ScorerLoadError("cannot tell the tokenizer's special tokens apart from the text")


def quantize_linear_layers(net: Any) -> Any:
    """int8 dynamic quantization of the Linear layers, for CPU inference; scores move slightly (the
    benchmark reports by how much). How much faster depends on the CPU's int8 matrix kernels: 1.9-2.9x
    on one of the project's hosts, 1.1-1.4x on another (docs/benchmarks.md). torch deprecates this API in
    favour of torchao; it still works."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.ao\.quantization is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", message=r".*quantized tensor creation functions", category=UserWarning
        )
        return torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
