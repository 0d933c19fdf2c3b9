"""Our main paths into the heavy dependencies, with every deprecation raised as an error.

A deprecation is blamed (by its stacklevel) on whichever frame the library guesses: transformers 5.24's
`past_key_values` warning names torch's `Module._call_impl`, not our `kv_batch.py`, so neither
pytest's module filters nor tests/deprecation_policy.py can tell that the call was ours. Here the paths
we own run under `simplefilter("error")` for the deprecation categories: one test per path fails,
naming the deepest frame of ours, and the rest of the suite runs on. A third-party deprecation that we
cannot fix goes into TOLERATED, by message, with the reason: a deliberate choice, never a blanket one.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import torch

from gateway.generation.generator import Generator
from gateway.generation.kv_batch import BatchState, PendingPrefill
from gateway.generation.model import LoadedModel, load_model
from gateway.generation.params import SamplingParams
from tests.deprecation_policy import DEPRECATIONS

ROOT = Path(__file__).resolve().parents[3]
OURS = (ROOT / "gateway", ROOT / "moderation", ROOT / "tests")
# message fragment -> why we let it pass (empty today).
TOLERATED: dict[str, str] = {}
T = TypeVar("T")


def strict(path: Callable[[], T]) -> T:
    """Runs `path` and returns its result; a deprecation (not tolerated) fails with the deepest call
    site of ours."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in DEPRECATIONS:
            warnings.simplefilter("error", category)
        for fragment in TOLERATED:
            warnings.filterwarnings("ignore", message=f".*{fragment}")
        try:
            return path()
        except DEPRECATIONS as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            mine = [f for f in frames if any(Path(f.filename).resolve().is_relative_to(o) for o in OURS)]
            site = (mine or frames)[-1]
            pytest.fail(f"deprecated call at {site.filename}:{site.lineno}: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def lm(demo_model_dir: Path) -> LoadedModel:
    return strict(lambda: load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32"))


def test_batched_decoding(lm: LoadedModel) -> None:
    """Prefill (one pass and chunked), decoding steps, rows leaving and joining: the batcher's calls."""
    ids = [lm.tokenizer(t)["input_ids"] for t in ("Once upon a time", "The garden was quiet and")]

    def run() -> None:
        with torch.inference_mode():
            state, logits = BatchState.prefill(lm.model, ids, [1, 2], pad_token_id=lm.tokenizer.pad_token_id)
            state.rows = ["a", "b", "c"]
            for _ in range(3):
                state.next_tokens = logits.argmax(-1)
                logits = state.step(lm.model)
            state.select([0, 2])
            pending = PendingPrefill.of(ids[:1], [1], pad_token_id=lm.tokenizer.pad_token_id, device="cpu")
            while (done := pending.advance(lm.model, 2)) is None:
                pass
            done[0].rows = ["d"]
            state.merge(done[0])
            state.next_tokens = torch.zeros(len(state.mask), dtype=torch.long)
            state.step(lm.model)

    strict(run)


def test_reference_generate(lm: LoadedModel) -> None:
    generator = Generator(lm)
    params = SamplingParams(max_new_tokens=4, seed=1, stop=("zz",), num_return_sequences=2)
    strict(lambda: generator.generate("Once upon a time", params, should_stop=lambda: False))


def test_demo_model_and_detoxify_checkpoint(tmp_path: Path) -> None:
    from gateway.generation.demo import write_demo_model
    from moderation.scorers.detoxify_scorer import DetoxifyScorer
    from moderation.testing import build_tiny_detoxify_checkpoint

    def run() -> None:
        write_demo_model(tmp_path / "demo")
        checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp_path / "detoxify")
        scorer = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir)
        scorer.score(["a quiet garden", "another line"])

    strict(run)


def test_migrations(tmp_path: Path) -> None:
    from gateway.storage import migrate

    strict(lambda: migrate.upgrade(f"sqlite:///{tmp_path / 'm.db'}"))
