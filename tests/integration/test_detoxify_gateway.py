"""Detoxify through the real gateway path: a TOML file's [moderation] table -> build_components ->
gRPC outputs carrying every category's score. The checkpoint is a tiny BERT in detoxify's own format
(random weights; its classifier bias moves every score low or high), run by the real Detoxify class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.client import GatewayClient, action_name
from gateway.config import load_settings
from gateway.server import build_components
from moderation.scorers.detoxify_scorer import MODELS
from moderation.testing import build_tiny_detoxify_checkpoint
from tests.integration.gateway_harness import ServerThread


def gateway_with_detoxify(tmp: Path, demo_model_dir: Path, bias: float) -> ServerThread:
    checkpoint, config_dir = build_tiny_detoxify_checkpoint(tmp / "detoxify", classifier_bias=bias)
    config = tmp / "modgate.toml"
    config.write_text(
        f'model = "{demo_model_dir}"\n'
        f'database_url = "sqlite:///{tmp / "db.sqlite"}"\n'
        "[moderation]\n"
        'default_policy = "default"\n'
        "[[moderation.scorers]]\n"
        'type = "profanity"\n'
        "[[moderation.scorers]]\n"
        'type = "detoxify"\n'
        'model = "unbiased"\n'
        f'checkpoint = "{checkpoint}"\n'
        f'huggingface_config_path = "{config_dir}"\n'
    )
    settings = load_settings(config, env={}, overrides={"insecure_no_auth": True})
    return ServerThread(build_components(settings, migrate_schema=True)).start()


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[ServerThread]:
    server = gateway_with_detoxify(tmp_path_factory.mktemp("calm"), demo_model_dir, bias=-4.0)
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="module")
def toxic(tmp_path_factory: pytest.TempPathFactory, demo_model_dir: Path) -> Iterator[ServerThread]:
    server = gateway_with_detoxify(tmp_path_factory.mktemp("toxic"), demo_model_dir, bias=4.0)
    yield server
    server.stop(grace=1)


def test_outputs_carry_every_detoxify_category(calm: ServerThread) -> None:
    with GatewayClient(calm.address) as client:
        out = client.generate("The garden", max_new_tokens=8, seed=2).outputs[0]
    scores = dict(out.moderation.scores)
    assert set(MODELS["unbiased"]) <= set(scores), scores
    assert all(0.0 <= scores[c] < 0.1 for c in MODELS["unbiased"])
    assert {s.name for s in out.moderation.scorers} == {"profanity", "detoxify"}
    assert action_name(out.moderation.action) == "RELEASED" and out.text


def test_high_scores_block_with_reasons_and_no_text(toxic: ServerThread) -> None:
    with GatewayClient(toxic.address) as client:
        response = client.generate("The garden", max_new_tokens=8, seed=2)
        streamed = list(client.generate_stream("The garden", max_new_tokens=8, seed=2))
    out = response.outputs[0]
    assert action_name(out.moderation.action) == "BLOCKED" and out.text == ""
    categories = {r.category for r in out.moderation.reasons}
    assert {"severe_toxicity", "threat", "identity_attack"} <= categories
    assert all(r.score >= r.threshold for r in out.moderation.reasons)
    assert [m.WhichOneof("event") for m in streamed] == ["start", "final"], "a stream releases nothing"
    assert action_name(streamed[-1].final.moderation.action) == "BLOCKED"
