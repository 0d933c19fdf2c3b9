"""Loads a GPT-Neo causal LM and its tokenizer, once, at start-up.

Loading is explicit about what it got: a hub id or a local directory, the revision, the device, and
whether the weights are the random ones of a demo model. It never falls back to another model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.generation.demo import DEMO_MARKER

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model named in the settings cannot be loaded; the message says what to do."""


@dataclass
class LoadedModel:
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    model_id: str
    revision: str
    device: str
    is_demo: bool
    kernels: str = "default"  # or "onednn-prepacked" (gateway.generation.prepack)
    _nul_ids: tuple[int, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def nul_token_ids(self) -> tuple[int, ...]:
        """Tokens whose text holds a NUL character, never to be generated: PostgreSQL's text type
        refuses NUL, so such an output could not be recorded (and the client would get INTERNAL).
        Byte-level BPE has one (byte 0); a byte-fallback vocabulary has `<0x00>`. Found once, by decoding
        every token alone: a NUL byte decodes to NUL whatever surrounds it, so no longer sequence can
        make one from tokens that have none."""
        if self._nul_ids is None:
            texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            self._nul_ids = tuple(i for i, text in enumerate(texts) if "\x00" in text)
        return self._nul_ids

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)


def pick_device(requested: str) -> str:
    """CUDA when present (or asked for), else CPU."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device=cuda was requested but no CUDA device is available")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _not_loadable_message(model: str, exc: BaseException) -> str:
    return (
        f"cannot load model {model!r}: {exc}\n"
        "This machine may be offline with no cached copy of the weights. Either download them on a "
        "connected machine (they are then cached), point --model at a local directory holding a saved "
        "GPT-Neo (config.json, weights, tokenizer), or, for a trial with random weights, create a demo "
        "model with `modgate demo-model DIR` and serve it with `modgate serve --model DIR`. "
        "modgate never falls back to another model by itself."
    )


def load_model(
    model: str,
    *,
    revision: str | None,
    device: str,
    dtype: str,
    prepack: bool = False,
    stock_rows: int | str = "auto",
) -> LoadedModel:
    """Loads with `from_pretrained` from a hub id or a local directory; logs progress and time.
    `prepack` swaps the Linear layers of a CPU fp32 model for oneDNN-prepacked ones (faster batched
    decoding, same results to fp32 rounding; see `gateway.generation.prepack`); inputs of at most
    `stock_rows` rows keep the stock kernel (setting `cpu_prepack_stock_rows`; "auto" by CPU vendor)."""
    started = time.perf_counter()
    log.info("loading model %s (revision %s) ...", model, revision or "default")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    local = Path(model).expanduser()
    source = str(local) if local.is_dir() else model
    is_demo = local.is_dir() and (local / DEMO_MARKER).exists()
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        log.info("tokenizer loaded (%.1fs); loading weights ...", time.perf_counter() - started)
        lm = AutoModelForCausalLM.from_pretrained(source, dtype=_torch_dtype(dtype, device), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_not_loadable_message(model, exc)) from exc
    if getattr(lm.config, "model_type", None) != "gpt_neo":
        log.warning("model %s is a %r model, not GPT-Neo; serving it anyway", model, lm.config.model_type)
    torch.nn.Module.to(lm, device)  # (PreTrainedModel.to's decorator hides its signature from mypy)
    lm.eval()
    if tokenizer.pad_token_id is None:
        # GPT-Neo has no pad token; padding with end-of-text is the usual choice and never generated
        # into the released text because it is masked out by the attention mask.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    resolved_revision = revision or getattr(lm.config, "_commit_hash", None) or "local"
    if is_demo:
        log.warning(
            "=" * 72 + "\nDEMO MODEL: %s has RANDOM WEIGHTS. Its text is gibberish, for trials and tests "
            "only.\n" + "=" * 72,
            model,
        )
    params = sum(p.numel() for p in lm.parameters())
    log.info(
        "model %s loaded: %.1fM parameters, %s, %s, context %d, in %.1fs (torch %s)",
        model,
        params / 1e6,
        device,
        dtype,
        int(getattr(lm.config, "max_position_embeddings", 0)),
        time.perf_counter() - started,
        torch.__version__,
    )
    fuse_gelu(lm)
    kernels = _prepack(lm, device, stock_rows) if prepack else "default"
    loaded = LoadedModel(
        model=lm,
        tokenizer=tokenizer,
        model_id=model,
        revision=str(resolved_revision),
        device=device,
        is_demo=is_demo,
        kernels=kernels,
    )
    log.info("%d token(s) that decode to NUL will never be generated", len(loaded.nul_token_ids))
    return loaded


def fuse_gelu(lm: Any) -> int:
    """Swaps GPT-Neo's `gelu_new` activation (transformers' `NewGELUActivation`: the tanh formula as six
    element-wise tensor operations) for `gelu_pytorch_tanh`, the same formula in one PyTorch kernel.
    Outputs move by float rounding only (largest difference ~2e-7); a decoding step saves five
    passes over every row's 3,072 MLP activations per layer (docs/benchmarks.md). Returns how many
    activations it swapped; other activations are left alone."""
    from transformers.activations import ACT2FN, NewGELUActivation

    swapped = 0
    for module in lm.modules():
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, ACT2FN["gelu_pytorch_tanh"])
                swapped += 1
    if swapped:
        log.info("activations: %d gelu_new swapped for the fused tanh GELU kernel (same formula)", swapped)
    return swapped


def _prepack(lm: Any, device: str, stock_rows: int | str) -> str:
    """Prepacks on a CPU (`prepack.prepack_on_cpu` says so either way)."""
    if device != "cpu":
        return "default"
    from gateway.generation.prepack import prepack_on_cpu

    return "onednn-prepacked" if prepack_on_cpu(lm, str(stock_rows), "GPT-Neo decoding") else "default"
