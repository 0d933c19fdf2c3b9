"""What a runtime word list costs a replica: building a tenant's variant, and scoring with it.

    .venv/bin/python bench/bench_wordlist_variants.py          # ~30 s on 2 CPU cores

A replica builds one moderator variant per combination of attached tenant and policy lists at each
revision (gateway/wordlists/serving.py). The variant's profanity scorer is `ProfanityScorer.extended`:
it shares the configured scorer's compiled matcher and compiles one for the extra words only. Baseline
in the same run: a scorer configured with the same extra words (`extra_words`, one matcher compiled
from scratch, what a variant would cost without sharing). Both are timed interleaved, as ratios:
build time per variant, and texts/s scoring 80-word texts (one text per call, as the stream moderator
calls it, and 64 per call).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.scorers.profanity import ProfanityScorer  # noqa: E402

WORDS = [
    "the",
    "a",
    "model",
    "of",
    "answer",
    "said",
    "people",
    "which",
    "over",
    "quickly",
    "brown",
    "river",
    "city",
    "under",
    "green",
    "light",
]


def _texts(count: int, extra: list[str], rng: random.Random) -> list[str]:
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(80)]
        if rng.random() < 0.3:
            words[rng.randrange(80)] = rng.choice(extra).rstrip("*")
        out.append(" ".join(words))
    return out


def _median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        re.purge()  # the re module caches compiled patterns: a new tenant's list is never cached
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--extra", type=int, default=50, help="extra words in the tenant's list")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=512)
    args = parser.parse_args()
    rng = random.Random(7)
    extra = [f"zq{''.join(rng.choice('bcdfghjklmnprstvw') for _ in range(5))}" for _ in range(args.extra)]
    extra += [f"{extra[0]}*", f"*{extra[1]}"]
    base = ProfanityScorer()
    texts = _texts(args.texts, extra, rng)
    builds: dict[str, list[float]] = {"extended": [], "configured": []}
    single: dict[str, list[float]] = {"extended": [], "configured": []}
    batched: dict[str, list[float]] = {"extended": [], "configured": []}
    for _ in range(args.rounds):
        builds["extended"].append(_median_s(lambda: base.extended(words=extra, refs=[(1, 1)]), 5))
        builds["configured"].append(_median_s(lambda: ProfanityScorer(extra_words=extra), 5))
        scorers = {
            "extended": base.extended(words=extra, refs=[(1, 1)]),
            "configured": ProfanityScorer(extra_words=extra),
        }
        for name, scorer in scorers.items():
            start = time.perf_counter()
            for text in texts:
                scorer.score([text])
            single[name].append(len(texts) / (time.perf_counter() - start))
            start = time.perf_counter()
            for i in range(0, len(texts), 64):
                scorer.score(texts[i : i + 64])
            batched[name].append(len(texts) / (time.perf_counter() - start))
    med = {k: statistics.median(v) for k, v in builds.items()}
    print(f"{len(extra)} extra entries, {args.rounds} interleaved rounds, {len(texts)} texts of 80 words")
    print(
        f"build per variant: extended {med['extended'] * 1000:.1f} ms, "
        f"configured {med['configured'] * 1000:.1f} ms "
        f"(extended / configured = {med['extended'] / med['configured']:.3f}x)"
    )
    for label, table in (("1 text per call", single), ("64 texts per call", batched)):
        ext, conf = statistics.median(table["extended"]), statistics.median(table["configured"])
        print(
            f"{label}: extended {ext:,.0f} texts/s, configured {conf:,.0f} texts/s "
            f"(extended / configured = {ext / conf:.2f}x)"
        )


if __name__ == "__main__":
    main()
