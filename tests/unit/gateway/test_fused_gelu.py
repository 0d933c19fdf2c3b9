"""GPT-Neo's `gelu_new` is served as the one-kernel tanh GELU: the same function to float rounding, so
the same logits (to fp32 rounding) and the same greedy text as the model transformers loads."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM
from transformers.activations import NewGELUActivation, PytorchGELUTanh

from gateway.generation.model import load_model


def test_served_model_uses_the_fused_activation_with_the_same_outputs(demo_model_dir: Path) -> None:
    served = load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32").model
    stock = AutoModelForCausalLM.from_pretrained(str(demo_model_dir), dtype=torch.float32).eval()
    assert stock.config.activation_function == "gelu_new"
    assert any(isinstance(m, NewGELUActivation) for m in stock.modules())
    assert not any(isinstance(m, NewGELUActivation) for m in served.modules())
    assert sum(isinstance(m, PytorchGELUTanh) for m in served.modules()) == stock.config.num_layers

    ids = torch.tensor([[5, 17, 42, 7, 99, 3, 250, 11]])
    with torch.inference_mode():
        a, b = stock(input_ids=ids).logits, served(input_ids=ids).logits
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
        greedy = {}
        for name, model in (("stock", stock), ("served", served)):
            seq = ids
            for _ in range(16):
                seq = torch.cat([seq, model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            greedy[name] = seq.tolist()
    assert greedy["stock"] == greedy["served"]
