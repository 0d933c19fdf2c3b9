"""The demo model made to prefer its NUL token, for the tests that NUL never reaches a client or a
database (tests/unit/gateway/test_nul_tokens.py, tests/integration/test_nul_output_pg.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from gateway.generation.model import LoadedModel, load_model


def nul_loving_model(model_dir: Path) -> LoadedModel:
    """The model at `model_dir` with a large bias on the logit of the token that decodes to NUL: the top
    choice at most steps, and a near-certain draw when sampling. An unsuppressed decoder emits it."""
    loaded = load_model(str(model_dir), revision=None, device="cpu", dtype="float32")
    (nul,) = loaded.nul_token_ids
    old = loaded.model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight = old.weight
        head.bias.zero_()
        head.bias[nul] = 5.0
    loaded.model.lm_head = head
    return loaded
