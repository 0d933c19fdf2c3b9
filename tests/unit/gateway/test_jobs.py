"""Who the batcher admits next (`jobs.admit`): oldest first, never overtaken, within the free rows."""

from __future__ import annotations

import collections
import threading

from gateway.generation.jobs import Job, admit
from gateway.generation.params import SamplingParams


def job(rows: int = 1, *, temperature: float = 1.0, stopped: bool = False) -> Job:
    cancel = threading.Event()
    if stopped:
        cancel.set()
    params = SamplingParams(num_return_sequences=rows, temperature=temperature, seed=1)
    return Job("p", params, cancel, lambda: False, None, lambda outcome: None)


def test_oldest_first_within_the_free_rows_and_never_overtaken() -> None:
    a, b, c, d = job(2), job(3), job(1), job(1)
    queue = collections.deque([a, b, c, d])
    taken, gave_up = admit(queue, free=4, batch_empty=False, key=None, group_by_params=False)
    assert taken == [a] and gave_up == []
    assert list(queue) == [b, c, d], "c would fit, but b came first: c waits"


def test_a_job_larger_than_the_batch_runs_when_the_batch_is_empty() -> None:
    big, small = job(8), job(1)
    queue = collections.deque([big, small])
    taken, _ = admit(queue, free=4, batch_empty=True, key=None, group_by_params=False)
    assert taken == [big] and list(queue) == [small]


def test_callers_that_gave_up_are_taken_out() -> None:
    gone, a = job(stopped=True), job()
    queue = collections.deque([gone, a])
    taken, gave_up = admit(queue, free=4, batch_empty=False, key=None, group_by_params=False)
    assert taken == [a] and gave_up == [gone] and not queue


def test_grouping_by_knobs_admits_only_the_running_batchs_knobs() -> None:
    hot, cold, hot2 = job(temperature=1.5), job(temperature=0.5), job(temperature=1.5)
    queue = collections.deque([hot, cold, hot2])
    taken, _ = admit(queue, free=4, batch_empty=True, key=None, group_by_params=True)
    assert taken == [hot, hot2] and list(queue) == [cold]
