"""The gateway benchmark's other process: the baseline and the bare model + moderation, no gateway.

Started by `bench_gateway.py`, it loads once and then answers one JSON command per stdin line with one
JSON line on stdout, so the orchestrator can interleave its requests with the gateway's (the only way
to compare on a machine whose speed drifts with other load):

- `{"cmd": "baseline", "prompt": P}`: the naive server: transformers `pipeline("text-generation")`
  then `Detoxify(...).predict` on the output, one request at a time (peak RSS is taken after its
  warm-up, before anything else is loaded).
- `{"cmd": "bare", "variant": "fp32" | "int8", "prompt": P}`: what one gateway request must do at least:
  `model.generate` then the gateway's own `Moderator.moderate` (same config as the gateway's), in-process.
  With `--prepack=on` the bare model and detoxify are loaded as the gateway loads them
  (`load_model(prepack=True)`, `prepack_scorers`: the same oneDNN kernels), so the N=1 overhead
  compares like with like.
- `{"cmd": "moderation_rates", "texts": [...]}`: texts/s of each moderator, one text per call vs all in
  one call (does batching moderation across requests pay on this device?).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def peak_rss() -> int:
    """Bytes (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Direct:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch
        from detoxify import Detoxify
        from transformers import pipeline

        self._torch = torch
        self.device = args.device
        self.new_tokens = args.new_tokens
        self.pipe: Any = pipeline(
            "text-generation", model=args.model, tokenizer=args.model, device=args.device, dtype=torch.float32
        )
        self.detox = Detoxify(
            checkpoint=args.checkpoint, huggingface_config_path=args.config_dir, device=args.device
        )
        self.baseline(args.warmup_prompt)
        self.baseline_rss = peak_rss()
        self.bare_model, self.bare_tokenizer = self.pipe.model, self.pipe.tokenizer
        if args.prepack == "on" and args.device == "cpu":
            from gateway.generation.model import load_model

            loaded = load_model(args.model, revision=None, device="cpu", dtype="float32", prepack=True)
            self.bare_model, self.bare_tokenizer = loaded.model, loaded.tokenizer
        self.moderators = {v: self._moderator(args, v) for v in args.variants.split(",")}
        if args.prepack == "on" and args.device == "cpu":  # the gateway's detoxify too (cpu_prepack)
            from gateway.pipeline.moderation_setup import prepack_scorers

            for moderator in self.moderators.values():
                prepack_scorers(moderator, "auto")
        for variant in self.moderators:
            self.bare(variant, args.warmup_prompt)

    def _moderator(self, args: argparse.Namespace, variant: str) -> Any:
        from gateway_fixtures import moderation_table

        from moderation.config import build_moderator

        return build_moderator(moderation_table(args.checkpoint, args.config_dir, args.device, variant))

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            self._torch.cuda.synchronize()

    def baseline(self, prompt: str) -> dict[str, Any]:
        started = time.perf_counter()
        (out,) = self.pipe(
            prompt,
            max_new_tokens=self.new_tokens,
            min_new_tokens=self.new_tokens,
            do_sample=False,
            return_full_text=False,
            pad_token_id=self.pipe.tokenizer.eos_token_id,
        )
        self._sync()
        generated = time.perf_counter()
        self.detox.predict([out["generated_text"]])
        self._sync()
        done = time.perf_counter()
        return {"latency": done - started, "generate_s": generated - started, "moderate_s": done - generated}

    def bare(self, variant: str, prompt: str) -> dict[str, Any]:
        tok, model = self.bare_tokenizer, self.bare_model
        started = time.perf_counter()
        with self._torch.inference_mode():
            enc = tok(prompt, return_tensors="pt").to(model.device)
            out = model.generate(
                **enc,
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )
        text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        self._sync()
        generated = time.perf_counter()
        self.moderators[variant].moderate([text])
        self._sync()
        done = time.perf_counter()
        return {"latency": done - started, "generate_s": generated - started, "moderate_s": done - generated}

    def moderation_rates(self, texts: list[str], rounds: int) -> dict[str, Any]:
        """Texts/s per moderator variant: one text per call and all texts in one call, interleaved."""
        results: dict[str, list[float]] = {}
        for _ in range(rounds):
            for variant, moderator in self.moderators.items():
                for mode in ("one per call", "one call"):
                    started = time.perf_counter()
                    if mode == "one call":
                        moderator.moderate(texts)
                    else:
                        for text in texts:
                            moderator.moderate([text])
                    self._sync()
                    rate = len(texts) / (time.perf_counter() - started)
                    results.setdefault(f"{variant}, {mode}", []).append(rate)
        return {"rates": results}


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--model", "--checkpoint", "--config-dir", "--warmup-prompt"):
        parser.add_argument(name, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="fp32,int8")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prepack", choices=["on", "off"], default="on")
    args = parser.parse_args()
    direct = Direct(args)
    print(json.dumps({"ready": True, "baseline_peak_rss": direct.baseline_rss}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "quit":
            print(json.dumps({"peak_rss": peak_rss()}), flush=True)
            return 0
        if cmd == "baseline":
            reply = direct.baseline(command["prompt"])
        elif cmd == "bare":
            reply = direct.bare(command["variant"], command["prompt"])
        elif cmd == "moderation_rates":
            reply = direct.moderation_rates(command["texts"], command.get("rounds", 2))
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
