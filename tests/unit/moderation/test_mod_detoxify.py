"""The detoxify scorer for real: the actual `detoxify.Detoxify` loader on a tiny BERT checkpoint, offline."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("detoxify")

from moderation.config import ModerationConfigError, build_moderator
from moderation.scorers.detoxify_scorer import MODELS, DetoxifyScorer, localize_checkpoint
from moderation.testing import build_tiny_detoxify_checkpoint
from moderation.types import Action

TEXTS = [
    "you are a stupid idiot",
    "have a nice day",
    "hello",
    "",
    "i will kill you and your family today",
    "what a great game, really great",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_detoxify_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def scorer(tiny) -> DetoxifyScorer:
    checkpoint, config_dir = tiny
    return DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, device="auto")


def test_labels_and_ranges(scorer: DetoxifyScorer) -> None:
    assert scorer.labels == MODELS["unbiased"]  # renamed from the checkpoint's jigsaw names by detoxify
    results = scorer.score(TEXTS)
    assert len(results) == len(TEXTS)
    for result in results:
        assert tuple(result.scores) == MODELS["unbiased"]
        assert all(0.0 <= v <= 1.0 for v in result.scores.values())
        assert result.spans == ()
    import torch

    assert scorer.device == ("cuda" if torch.cuda.is_available() else "cpu")  # what "auto" means


def test_scores_equal_detoxify_predict(scorer: DetoxifyScorer) -> None:
    expected = scorer.detoxify.predict(TEXTS)  # detoxify's own path (called with a list: lists back)
    for i, result in enumerate(scorer.score(TEXTS)):
        for label, value in result.scores.items():
            assert math.isclose(value, expected[label][i], abs_tol=1e-5)


def test_batch_equals_one_by_one(scorer: DetoxifyScorer) -> None:
    batch = scorer.score(TEXTS)
    single = [scorer.score([t])[0] for t in TEXTS]
    reverse = scorer.score(TEXTS[::-1])[::-1]
    for a, b, c in zip(batch, single, reverse, strict=True):
        for label in a.scores:
            assert math.isclose(a.scores[label], b.scores[label], abs_tol=1e-5)
            assert math.isclose(a.scores[label], c.scores[label], abs_tol=1e-5)


def test_checkpoint_weights_are_really_used(tmp_path, scorer: DetoxifyScorer) -> None:
    checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp_path, classifier_bias=3.0)
    biased = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir)
    base = scorer.score(["have a nice day"])[0].scores["toxicity"]
    raised = biased.score(["have a nice day"])[0].scores["toxicity"]
    assert raised > 0.9 > 0.6 > base
    assert biased.version != scorer.version  # the version names the checkpoint by hash


def test_long_texts_are_scored_in_windows(tiny, scorer: DetoxifyScorer) -> None:
    # max_position_embeddings=128 in the tiny model: 600 words would crash predict without truncation
    long_text = "have a nice day " * 50 + "stupid idiot " * 100
    windows = scorer._split(list(range(700)))
    assert len(windows) > 1 and all(len(w) <= 126 for w in windows)
    assert windows[0][0] == 0 and windows[1][0] == scorer._step < 126  # overlapping
    assert windows[-1][-1] == 699  # nothing dropped at the end
    [result] = scorer.score([long_text])
    tail_only = scorer.score(["stupid idiot " * 60])[0]
    # the max over windows reaches at least what the offending part alone scores (minus float noise)
    for label, value in tail_only.scores.items():
        assert result.scores[label] >= value - 2e-3


def test_version_names_model_and_checkpoint(scorer: DetoxifyScorer, tiny) -> None:
    import hashlib

    checkpoint, _ = tiny
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    assert scorer.version == f"detoxify-unbiased-{digest}"


def test_quantized_scores_stay_close(tiny, scorer: DetoxifyScorer) -> None:
    checkpoint, config_dir = tiny
    quantized = DetoxifyScorer(
        checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu", quantize=True
    )
    assert quantized.version.endswith("-int8")
    reference = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu")
    for a, b in zip(reference.score(TEXTS), quantized.score(TEXTS), strict=True):
        for label in a.scores:
            assert abs(a.scores[label] - b.scores[label]) < 0.05


def test_moderator_from_config_uses_real_detoxify_scores(tmp_path) -> None:
    checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp_path, classifier_bias=3.0)
    moderator = build_moderator(
        {
            "scorers": [
                {"type": "profanity"},
                {
                    "type": "detoxify",
                    "checkpoint": str(checkpoint),
                    "huggingface_config_path": str(config_dir),
                },
            ]
        }
    )
    [decision] = moderator.moderate(["have a nice day"])
    # a +3 bias pushes every label to ~0.95: severe_toxicity/threat/identity_attack cross default block
    assert decision.action is Action.BLOCK
    assert {"toxicity", "threat", "sexual_explicit", "profanity"} <= set(decision.scores)
    assert any(r.category == "threat" and r.scorer == "detoxify" for r in decision.reasons)


def test_identity_check_rescores_with_real_detoxify(tmp_path) -> None:
    checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp_path, classifier_bias=3.0)
    table = {"type": "detoxify", "checkpoint": str(checkpoint), "huggingface_config_path": str(config_dir)}
    moderator = build_moderator({"scorers": [table]})
    [decision] = moderator.moderate(["muslims and jews are people"])
    # every label sits near 0.95 whatever the words: the neutral text blocks too, so nothing is softened
    checks = {c.category: c for c in decision.identity_checks}
    assert set(checks) == {"identity_attack", "toxicity"}
    for check in checks.values():
        assert check.substituted_terms == ("muslims", "jews")
        assert check.neutral_score >= 0.8 and check.neutral_score != check.original_score
        assert not check.softened
    assert decision.action is Action.BLOCK


def test_corrupt_checkpoint_is_a_config_error(tmp_path, tiny) -> None:
    _, config_dir = tiny
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModerationConfigError, match="cannot load the model"):
        build_moderator(
            {
                "scorers": [
                    {"type": "detoxify", "checkpoint": str(bad), "huggingface_config_path": str(config_dir)}
                ]
            }
        )


def test_released_style_checkpoint_needs_localizing_offline(tmp_path) -> None:
    # released checkpoints name a hub model ("bert-base-uncased"): offline, detoxify cannot resolve it
    checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp_path, model_type="no-such-hub-model-offline")
    with pytest.raises(ModerationConfigError, match="cannot load the model"):
        build_moderator(
            {
                "scorers": [
                    {
                        "type": "detoxify",
                        "checkpoint": str(checkpoint),
                        "huggingface_config_path": str(config_dir),
                    }
                ]
            }
        )
    local = localize_checkpoint(checkpoint, config_dir)
    assert local != checkpoint and local.exists()
    scorer = DetoxifyScorer(checkpoint=local, huggingface_config_path=config_dir)
    assert scorer.labels == MODELS["unbiased"]


def test_two_threads_score_at_the_same_time_with_the_same_scores(tiny) -> None:
    """The gateway splits a moderation round over idle cores: two calls must run the network at once
    (only the tokenizer is locked) and give what one call gives."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    checkpoint, config_dir = tiny
    scorer = DetoxifyScorer(checkpoint=checkpoint, huggingface_config_path=config_dir, device="cpu")
    serial = scorer.score(TEXTS)
    both_inside = threading.Barrier(2, timeout=20)  # broken if the forwards cannot overlap

    def meet(*_: object) -> None:  # a pre-hook that returns something would replace the inputs
        both_inside.wait()

    handle = scorer.network.register_forward_pre_hook(meet)
    try:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.submit(scorer.score, TEXTS[:3]), pool.submit(scorer.score, TEXTS[3:])
            parallel = first.result() + second.result()
    finally:
        handle.remove()
    for a, b in zip(serial, parallel, strict=True):
        for label in a.scores:
            assert math.isclose(a.scores[label], b.scores[label], abs_tol=1e-5)


def test_network_and_quantized(tiny, scorer: DetoxifyScorer) -> None:
    import torch

    assert isinstance(scorer.network, torch.nn.Module) and not scorer.quantized
    checkpoint, config_dir = tiny
    int8 = DetoxifyScorer(
        checkpoint=checkpoint, huggingface_config_path=config_dir, quantize=True, device="cpu"
    )
    assert int8.quantized and int8.network is not int8.detoxify.model  # the int8 copy scores
