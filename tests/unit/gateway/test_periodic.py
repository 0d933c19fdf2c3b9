"""The background loop's rules: failures are retried, a full batch goes on at once, cancel stops it."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from gateway.ops.periodic import backoff_step, repeat

log = logging.getLogger("test.periodic")


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    steps = [backoff_step(n, base_s=5.0, max_s=60.0) for n in range(0, 7)]
    assert steps == [5.0, 5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert backoff_step(10**9, base_s=5.0, max_s=3600.0) == 3600.0  # no overflow


def test_a_failing_pass_is_logged_and_retried_after_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []
    third = asyncio.Event()

    async def one_pass() -> int:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 3:
            third.set()
        if len(calls) < 3:
            raise RuntimeError("database down")
        return 0

    async def main() -> None:
        task = asyncio.create_task(repeat(one_pass, interval_s=0.05, what="test pass", logger=log, batch=4))
        await asyncio.wait_for(third.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.ERROR, logger="test.periodic"):
        asyncio.run(main())
    assert [r.getMessage() for r in caplog.records] == ["test pass failed; retrying in 0.1s"] * 2
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(calls))


def test_a_full_batch_is_followed_at_once_and_a_short_one_waits() -> None:
    done = iter([4, 4, 4, 1, 4])
    calls: list[float] = []

    async def one_pass() -> int:
        calls.append(asyncio.get_running_loop().time())
        return next(done)

    async def main() -> None:
        task = asyncio.create_task(repeat(one_pass, interval_s=30.0, what="test pass", logger=log, batch=4))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(calls) == 4  # three full batches back to back, then the short one waits 30 s
    assert calls[3] - calls[0] < 0.1


def test_without_a_batch_every_pass_waits_the_interval() -> None:
    calls = 0

    async def one_pass() -> None:
        nonlocal calls
        calls += 1

    async def main() -> None:
        task = asyncio.create_task(repeat(one_pass, interval_s=30.0, what="test pass", logger=log))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == 1
