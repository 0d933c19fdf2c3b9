"""The background loop every `serve` worker runs: a pass, then a pause, until the server stops.

One copy of the rule the maintenance sweep, the webhook sender and the prompt-run worker share: a pass
that raises (the database is down for a while) is logged and retried after the interval, because the
gateway must recover without a restart; a pass that did a full batch of work is followed at once by the
next, so a backlog drains at the database's pace rather than one batch per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["backoff_step", "repeat"]


async def repeat(
    one_pass: Callable[[], Awaitable[int | None]],
    *,
    interval_s: float,
    what: str,
    logger: logging.Logger,
    batch: int | None = None,
) -> None:
    """Runs `one_pass` until cancelled. It returns how many pieces of work it did; when that reaches
    `batch`, the next pass starts at once, otherwise after `interval_s`. Cancellation is never caught."""
    while True:
        try:
            done = await one_pass()
        except Exception:
            logger.exception("%s failed; retrying in %.1fs", what, interval_s)
            done = 0
        if batch is None or (done or 0) < batch:
            await asyncio.sleep(interval_s)


def backoff_step(attempts: int, *, base_s: float, max_s: float) -> float:
    """Seconds before retrying work that failed `attempts` times: `base_s` x 2^(attempts-1), at most
    `max_s`. The exponent is capped, so a row failing for weeks never overflows the float."""
    return min(max_s, base_s * 2 ** max(0, min(attempts - 1, 60)))
