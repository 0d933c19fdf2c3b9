"""What the QA draw adds to recording a call's outcome, the transaction the client waits for.

    .venv/bin/python bench/bench_qa_recording.py            # ~30 s on 2 cores (SQLite in a temp dir)
    .venv/bin/python bench/bench_qa_recording.py --quick    # seconds: checks the script runs
    .venv/bin/python bench/bench_qa_recording.py --database-url postgresql+psycopg://...  # an empty db

`Recorder.outcome` is timed for one released output per call, without QA (the baseline, in the same
run), with `[review.qa]` at rate 1.0 (every output drawn: the worst case) and at 0.02 (one call in
fifty pays for the INSERT, the others only for a hash). Rounds interleave the two so that machine load
hits both alike; the result is a ratio of medians, not a time to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.generation.generator import FinishReason, GeneratedSequence
from gateway.pipeline.recording import OutputRecord, Recorder, RequestHandle
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.records import record_request
from moderation.types import Action, Decision

TEXT = "a perfectly ordinary answer about the weather, " * 4
POLICY = "default"


def one_output() -> OutputRecord:
    decision = Decision(
        action=Action.RELEASE,
        text=TEXT,
        original_text=TEXT,
        scores={"toxicity": 0.02, "insult": 0.01},
        reasons=(),
        spans=(),
        policy_name=POLICY,
        policy_version="v1",
    )
    sequence = GeneratedSequence(0, TEXT, 8, 48, FinishReason.LENGTH)
    return OutputRecord(prompt_index=0, prompt="p", sequence=sequence, decision=decision)


def time_calls(recorder: Recorder, sessions: object, calls: int) -> list[float]:
    """Seconds per `outcome` call; the request rows are made first, outside the timing."""
    handles = []
    with sessions() as s, s.begin():  # type: ignore[operator]
        for _ in range(calls):
            rid = uuid.uuid4().hex
            row = record_request(session=s, request_id=rid, tenant="acme", model_id="m", prompt_count=1)
            handles.append(RequestHandle(id=row.id, request_id=rid, tenant="acme"))
    record = [one_output()]

    async def run() -> list[float]:
        times = []
        for handle in handles:
            start = time.perf_counter()
            await recorder.outcome(handle, record)
            times.append(time.perf_counter() - start)
        return times

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few calls (smoke test)")
    parser.add_argument("--calls", type=int, default=None, help="outcome calls per round and variant")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--database-url", default=None, help="an empty database (default: temp SQLite)")
    args = parser.parse_args(argv)
    calls = args.calls if args.calls is not None else (5 if args.quick else 200)
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        variants = {
            "without QA (baseline)": Recorder(sessions),
            "QA at rate 1.0": Recorder(sessions, qa_rates={POLICY: 1.0}),
            "QA at rate 0.02": Recorder(sessions, qa_rates={POLICY: 0.02}),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, recorder in variants.items():
                times[name] += time_calls(recorder, sessions, calls)
        engine.dispose()
    print(f"| recording one released output ({engine.dialect.name}) | median ms | calls |")
    print("|---|---|---|")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"| {name} | {1000 * medians[name]:.2f} | {len(t)} |")
    base = medians["without QA (baseline)"]
    print()
    for name in ("QA at rate 1.0", "QA at rate 0.02"):
        print(f"{name} / baseline: {medians[name] / base:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
