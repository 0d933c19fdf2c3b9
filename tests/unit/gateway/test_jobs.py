"""Who the batcher admits next (`jobs.admit`): oldest first, never overtaken, within the free rows and
the KV cache's token budget."""

from __future__ import annotations

import collections
import threading

from gateway.generation.jobs import Job, TokenBudget, admit
from gateway.generation.params import SamplingParams


def job(
    rows: int = 1, *, temperature: float = 1.0, stopped: bool = False, prompt: int = 4, new: int = 16
) -> Job:
    """`prompt` tokens of prompt, `new` max new tokens."""
    cancel = threading.Event()
    if stopped:
        cancel.set()
    params = SamplingParams(num_return_sequences=rows, temperature=temperature, seed=1, max_new_tokens=new)
    return Job("p", params, cancel, lambda: False, None, lambda outcome: None, prompt_ids=[1] * prompt)


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


def test_the_token_budget_bounds_rows_times_the_widest_row() -> None:
    """Rows are left-padded to the widest, so 3 rows of 20 tokens and one of 100 need 4 x 100."""
    a, b, c, wide = job(prompt=4), job(prompt=4), job(prompt=4), job(prompt=84)
    queue = collections.deque([a, b, c, wide])
    budget = TokenBudget(max_tokens=399)
    taken, _ = admit(queue, free=32, batch_empty=True, key=None, group_by_params=False, budget=budget)
    assert taken == [a, b, c] and list(queue) == [wide]  # 4 x 100 = 400 > 399
    queue = collections.deque([wide])
    running = TokenBudget(max_tokens=400, rows=3, widest=20)
    taken, _ = admit(queue, free=29, batch_empty=False, key=None, group_by_params=False, budget=running)
    assert taken == [wide]


def test_the_budget_counts_the_running_batch_and_num_return_sequences() -> None:
    four = job(4, prompt=10, new=15)  # 4 rows of 25 tokens
    queue = collections.deque([four])
    running = TokenBudget(max_tokens=200, rows=4, widest=50)
    taken, _ = admit(queue, free=28, batch_empty=False, key=None, group_by_params=False, budget=running)
    assert taken == [] and list(queue) == [four]  # (4 + 4) x 50 = 400 > 200
    taken, _ = admit(
        queue, free=28, batch_empty=False, key=None, group_by_params=False, budget=TokenBudget(400, 4, 50)
    )
    assert taken == [four]


def test_a_request_over_the_whole_budget_runs_alone() -> None:
    huge, small = job(prompt=900, new=200), job()
    queue = collections.deque([huge, small])
    budget = TokenBudget(max_tokens=1000)
    taken, _ = admit(queue, free=32, batch_empty=True, key=None, group_by_params=False, budget=budget)
    assert taken == [huge] and list(queue) == [small]  # the batch was empty: it runs, alone
