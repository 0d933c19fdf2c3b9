"""The dynamic batcher on the tiny demo GPT-Neo: a row's text never depends on what shares its batch.

Reference outputs come from `Generator` (transformers' `generate`, one prompt at a time), so these
tests also pin the batcher's own decode loop to the library's semantics (processors, seeds, stops).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from gateway.errors import Cancelled, ResourceExhausted, Unavailable
from gateway.generation.batcher import Batcher
from gateway.generation.generator import FinishReason, Generator
from gateway.generation.kv_batch import BatchState, PendingPrefill
from gateway.generation.model import load_model
from gateway.generation.params import SamplingParams
from gateway.generation.prepack import prepack_linear_layers

# Prompts of 1 to ~12 tokens: batched, most rows are left-padded.
PROMPTS = [
    "Hi",
    "The meaning of life is",
    "Once upon a time in a small village there lived a baker who",
    "The library opens",
    "Rain",
    "We walked along the river until the evening bells rang",
]
GREEDY = SamplingParams(do_sample=False, max_new_tokens=24)
# Different knobs in one batch: each must keep its own processors and its own seeded generator.
MIXED = [
    SamplingParams(seed=11, max_new_tokens=20),
    SamplingParams(seed=3, max_new_tokens=20, temperature=0.7, top_p=0.9, top_k=0),
    SamplingParams(seed=5, max_new_tokens=20, repetition_penalty=1.3, top_k=10, min_new_tokens=20),
    SamplingParams(seed=7, max_new_tokens=16, temperature=1.5, num_return_sequences=3),
    SamplingParams(do_sample=False, max_new_tokens=20, repetition_penalty=1.2),
    SamplingParams(seed=9, max_new_tokens=20, top_k=5),
]
NEVER: Callable[[], bool] = lambda: False  # noqa: E731


@pytest.fixture(scope="module", params=[False, True], ids=["default-kernels", "prepacked"])
def generator(demo_model_dir: Path, request: pytest.FixtureRequest) -> Generator:
    """Every test runs on the stock Linear layers and on the oneDNN-prepacked ones (`cpu_prepack`)."""
    loaded = load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32")
    if request.param:  # the demo model's layers are below the size that gains: prepack them anyway
        assert prepack_linear_layers(loaded.model, min_weights=0) > 0
    return Generator(loaded)


@pytest.fixture
def make_batcher(generator: Generator) -> Iterator[Callable[..., Batcher]]:
    made: list[Batcher] = []

    def make(**kwargs: object) -> Batcher:
        options: dict[str, object] = {"max_batch_size": 32, "max_wait_ms": 50.0, "max_queue": 64, **kwargs}
        batcher = Batcher(generator, **options)  # type: ignore[arg-type]
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.shutdown()


def run(batcher: Batcher, prompt: str, params: SamplingParams, **kw: object) -> asyncio.Future:
    """Starts one request as a task (so several run concurrently)."""
    cancel = kw.pop("cancel", threading.Event())
    should_stop = kw.pop("should_stop", NEVER)
    return asyncio.ensure_future(batcher.generate(prompt, params, cancel=cancel, should_stop=should_stop))


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_greedy_batched_equals_alone_with_mixed_prompt_lengths(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher()
    reference = [generator.generate(p, GREEDY, should_stop=NEVER) for p in PROMPTS]
    alone = [await run(batcher, p, GREEDY) for p in PROMPTS]
    before = batcher.stats()
    batched = await asyncio.gather(*(run(batcher, p, GREEDY) for p in PROMPTS))
    after = batcher.stats()
    assert after.prefills - before.prefills == 1 and after.max_rows == len(PROMPTS)  # really one batch
    assert alone == reference
    assert batched == reference


async def test_seeded_sampling_with_mixed_params_is_independent_of_the_batch(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher()
    cases = [(p, params) for p in PROMPTS[:3] for params in MIXED]
    alone = [await run(batcher, p, params) for p, params in cases]
    batched = await asyncio.gather(*(run(batcher, p, params) for p, params in cases))
    assert batched == alone
    rows = sum(params.num_return_sequences for _, params in cases)
    assert batcher.stats().max_rows == rows  # all the mixed parameters shared one batch
    # One sequence per prompt: exactly what `generate` draws after torch.manual_seed(seed).
    for (prompt, params), got in zip(cases, alone, strict=True):
        if params.num_return_sequences == 1:
            assert got == generator.generate(prompt, params, should_stop=NEVER)
    texts = {tuple(s.text for s in seqs) for seqs in alone}
    assert len(texts) == len(cases)  # different seeds and knobs really give different text


async def test_finished_rows_leave_the_batch_early(make_batcher: Callable[..., Batcher]) -> None:
    observed: list[int] = []
    batcher = make_batcher(observe_rows=observed.append)
    short = run(batcher, PROMPTS[1], SamplingParams(do_sample=False, max_new_tokens=5))
    long = run(batcher, PROMPTS[2], SamplingParams(do_sample=False, max_new_tokens=60, min_new_tokens=60))
    (seq,) = await short
    assert not long.done()  # answered while the long one still runs
    assert seq.generated_tokens == 5 and seq.finish_reason is FinishReason.LENGTH
    await long
    # prefill gives token 1 of both; 4 steps with both rows, then the long row alone for 55 more
    assert batcher.stats().rows_per_step == {2: 4, 1: 55}
    assert observed == [2] * 4 + [1] * 55  # what the modgate_batch_size histogram receives


async def test_cancelled_row_is_dropped_while_the_others_continue(
    make_batcher: Callable[..., Batcher],
) -> None:
    batcher = make_batcher()
    params = SamplingParams(seed=1, max_new_tokens=40, min_new_tokens=40)
    (expected,) = await run(batcher, PROMPTS[3], params)
    cancel = threading.Event()
    doomed = run(batcher, PROMPTS[1], SamplingParams(max_new_tokens=500, min_new_tokens=500), cancel=cancel)
    survivor = run(batcher, PROMPTS[3], params)
    await wait_for(lambda: batcher.stats().steps >= 5)
    cancel.set()
    with pytest.raises(Cancelled):
        await doomed
    (got,) = await survivor
    assert got == expected
    stats = batcher.stats()
    assert stats.cancelled == 1 and stats.rows_per_step[2] < 20  # the cancelled row left early


async def test_deadline_ends_a_request_with_cancelled(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher()
    deadline = time.monotonic() + 0.2
    started = time.monotonic()
    with pytest.raises(Cancelled):
        await run(
            batcher,
            PROMPTS[0],
            SamplingParams(max_new_tokens=2000, min_new_tokens=2000),
            should_stop=lambda: time.monotonic() > deadline,
        )
    assert time.monotonic() - started < 2


async def test_new_requests_join_a_running_batch(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher()
    first_params = SamplingParams(do_sample=False, max_new_tokens=80, min_new_tokens=80)
    # The joiner's prompt is longer than the first's text so far: the running row's cache is padded.
    late_params = SamplingParams(seed=4, max_new_tokens=10)
    late_prompt = " ".join(PROMPTS)
    (first_alone,) = await run(batcher, PROMPTS[0], first_params)
    (late_alone,) = await run(batcher, late_prompt, late_params)
    first = run(batcher, PROMPTS[0], first_params)
    await wait_for(lambda: batcher.running_rows == 1)
    (late,) = await run(batcher, late_prompt, late_params)
    assert not first.done()
    assert batcher.stats().joined_running == 1
    assert late == late_alone
    assert (await first) == [first_alone]


async def test_the_token_budget_keeps_requests_apart_that_the_rows_would_let_share(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    """`max_batch_tokens`: two rows of W tokens each (prompt + max_new_tokens) need 2 x W; one token
    less and the second request waits for the first, with the same text as alone."""
    params = SamplingParams(do_sample=False, max_new_tokens=12, min_new_tokens=12)
    widest = max(len(generator.encode(p)) for p in PROMPTS[:2]) + 12
    reference = [generator.generate(p, params, should_stop=NEVER) for p in PROMPTS[:2]]
    apart = make_batcher(max_batch_tokens=2 * widest - 1)
    assert await asyncio.gather(*(run(apart, p, params) for p in PROMPTS[:2])) == reference
    assert apart.stats().max_rows == 1 and apart.stats().prefills == 2
    together = make_batcher(max_batch_tokens=2 * widest)
    assert await asyncio.gather(*(run(together, p, params) for p in PROMPTS[:2])) == reference
    assert together.stats().max_rows == 2


async def test_requests_with_the_same_prompt_share_one_prefill(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    """Identical prompt ids are prefilled once for every request that has them (and, as before, for
    every one of a request's sequences); each request's text is still its own, as alone."""
    greedy = SamplingParams(do_sample=False, max_new_tokens=10, min_new_tokens=10)
    seeded = SamplingParams(seed=7, max_new_tokens=10, min_new_tokens=10, num_return_sequences=2)
    calls = [(PROMPTS[0], greedy), (PROMPTS[1], greedy), (PROMPTS[0], seeded)]
    reference = [generator.generate(p, params, should_stop=NEVER) for p, params in calls]
    batcher = make_batcher()
    widths: list[int] = []
    original = generator.loaded.model.forward

    def spy(*args: object, **kwargs: object) -> object:
        widths.append(int(kwargs["input_ids"].shape[0]))  # type: ignore[attr-defined]
        return original(*args, **kwargs)

    generator.loaded.model.forward = spy  # type: ignore[method-assign]
    try:
        got = await asyncio.gather(*(run(batcher, p, params) for p, params in calls))
    finally:
        del generator.loaded.model.forward
    assert got == reference
    stats = batcher.stats()
    assert stats.prefills == 1 and stats.shared_prefills == 1 and stats.max_rows == 4
    assert widths[0] == 2  # two distinct prompts in the one prefill pass; then 4 rows a step
    assert set(widths[1:]) == {4}


async def test_idle_means_no_row_runs_and_none_waits(make_batcher: Callable[..., Batcher]) -> None:
    """What the moderation batcher reads to split a round over the decoder's cores: never True while a
    row runs or waits, True again once the last request was answered (it is out of the batch first)."""
    batcher = make_batcher(max_batch_size=1, max_wait_ms=0)
    assert batcher.idle()
    cancel = threading.Event()
    running = run(
        batcher, PROMPTS[0], SamplingParams(max_new_tokens=2000, min_new_tokens=2000), cancel=cancel
    )
    await wait_for(lambda: batcher.running_rows == 1)
    assert not batcher.idle()
    queued = run(batcher, PROMPTS[1], SamplingParams(seed=1, max_new_tokens=4))
    await wait_for(lambda: batcher.waiting == 1)
    assert not batcher.idle()
    cancel.set()
    with pytest.raises(Cancelled):
        await running
    await queued
    assert batcher.idle()  # as the answer arrives, not some time later


async def test_stop_sequences_and_streaming_match_the_generator(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    batcher = make_batcher()
    full = generator.generate(PROMPTS[1], SamplingParams(seed=5, max_new_tokens=24), should_stop=NEVER)[0]
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    params = SamplingParams(seed=5, max_new_tokens=24, stop=(stop,))
    expected = generator.generate(PROMPTS[1], params, should_stop=NEVER)
    deltas: list[str] = []
    stream = asyncio.ensure_future(
        batcher.generate_stream(
            PROMPTS[1], params, cancel=threading.Event(), should_stop=NEVER, on_text=deltas.append
        )
    )
    plain = run(batcher, PROMPTS[1], params)
    other = run(batcher, PROMPTS[2], SamplingParams(seed=2, max_new_tokens=30))
    streamed, got, _ = await asyncio.gather(stream, plain, other)
    assert got == expected and expected[0].finish_reason is FinishReason.STOP_SEQUENCE
    assert streamed == expected[0]
    assert "".join(deltas) == expected[0].text and len(deltas) > 1


async def test_a_full_queue_refuses_at_once(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=1, max_queue=1, max_wait_ms=0)
    cancel = threading.Event()
    running = run(
        batcher, PROMPTS[0], SamplingParams(max_new_tokens=2000, min_new_tokens=2000), cancel=cancel
    )
    await wait_for(lambda: batcher.running_rows == 1)
    queued = run(batcher, PROMPTS[1], SamplingParams(seed=1, max_new_tokens=4))
    await wait_for(lambda: batcher.waiting == 1)
    started = time.monotonic()
    with pytest.raises(ResourceExhausted):
        await batcher.generate(PROMPTS[2], GREEDY, cancel=threading.Event(), should_stop=NEVER)
    assert time.monotonic() - started < 0.1
    cancel.set()
    with pytest.raises(Cancelled):
        await running
    (seq,) = await queued  # the queued request runs once the batch has room
    assert seq.generated_tokens == 4
    assert batcher.stats().refused == 1


async def test_shutdown_refuses_queued_and_new_requests(make_batcher: Callable[..., Batcher]) -> None:
    batcher = make_batcher(max_batch_size=1, max_wait_ms=0)
    running = run(batcher, PROMPTS[0], SamplingParams(seed=1, max_new_tokens=150, min_new_tokens=150))
    await wait_for(lambda: batcher.running_rows == 1)
    queued = run(batcher, PROMPTS[1], GREEDY)
    await wait_for(lambda: batcher.waiting == 1)
    await asyncio.get_running_loop().run_in_executor(None, batcher.shutdown)
    (seq,) = await running  # the running batch was finished
    assert seq.generated_tokens == 150
    with pytest.raises(Unavailable):
        await queued
    with pytest.raises(Unavailable):
        await run(batcher, PROMPTS[1], GREEDY)


def test_pruning_rows_keeps_the_logits_of_the_others(generator: Generator) -> None:
    """Rows leaving (cache rows selected, all-padding columns cut) leave the other rows' logits as they
    were, to fp32 rounding (a different batch size or key length changes the summation order)."""
    lm = generator.loaded
    tok = lm.tokenizer
    prompts = [tok(p)["input_ids"] for p in (PROMPTS[2], PROMPTS[1], PROMPTS[0])]

    def decode(drop: list[int]) -> tuple[dict[int, torch.Tensor], int]:
        """Six greedy steps of all three rows; rows `drop` leave after the second. Returns the last
        logits of each remaining row (keyed by its original index) and the final cache width."""
        with torch.inference_mode():
            state, logits = BatchState.prefill(lm.model, prompts, [1, 1, 1], pad_token_id=tok.pad_token_id)
            state.rows = [0, 1, 2]
            for step in range(6):
                state.next_tokens = logits.argmax(-1)
                if step == 2 and drop:
                    state.select([i for i, r in enumerate(state.rows) if r not in drop])
                logits = state.step(lm.model)
        assert state.cache.get_seq_length() == state.mask.shape[1]
        return {r: logits[i] for i, r in enumerate(state.rows)}, state.mask.shape[1]

    full, width = decode([])
    without_short, same_width = decode([1, 2])
    assert same_width == width
    torch.testing.assert_close(without_short[0], full[0], rtol=0, atol=1e-5)
    without_long, narrower = decode([0])
    assert without_long.keys() == {1, 2} and narrower == width - (len(prompts[0]) - len(prompts[1]))
    for r in (1, 2):
        torch.testing.assert_close(without_long[r], full[r], rtol=0, atol=1e-5)


def test_joining_then_leaving_keeps_the_logits_of_every_row(generator: Generator) -> None:
    """A short running row joined by a longer new one (the running cache is left-padded), then the
    longer row leaves (its columns are cut again): the short row's logits stay those of running alone."""
    lm = generator.loaded
    tok = lm.tokenizer
    short, long = tok(PROMPTS[0])["input_ids"], tok(" ".join(PROMPTS))["input_ids"]

    def start(prompt: list[int]) -> tuple[BatchState, torch.Tensor]:
        state, logits = BatchState.prefill(lm.model, [prompt], [1], pad_token_id=tok.pad_token_id)
        state.rows = [len(prompt)]
        state.next_tokens = logits.argmax(-1)
        return state, logits

    with torch.inference_mode():
        alone, _ = start(short)
        for _ in range(3):
            alone.next_tokens = alone.step(lm.model).argmax(-1)
        expected = []
        for _ in range(4):
            logits = alone.step(lm.model)
            expected.append(logits[0])
            alone.next_tokens = logits.argmax(-1)

        batch, _ = start(short)
        for _ in range(3):
            batch.next_tokens = batch.step(lm.model).argmax(-1)
        joiner, _ = start(long)
        batch.merge(joiner)
        assert batch.mask.shape[1] == len(long) and batch.cache.get_seq_length() == len(long)
        got = []
        for step in range(4):
            logits = batch.step(lm.model)
            got.append(logits[0])
            batch.next_tokens = logits.argmax(-1)
            if step == 1:
                batch.select([0])  # the long row leaves; its padding columns are cut from the short one
                assert batch.mask.shape[1] == len(short) + 3 + 2
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_batch_settings_are_validated() -> None:
    from gateway.config import Settings, SettingsError, load_settings

    assert (Settings().max_batch_size, Settings().max_batch_wait_ms) == (32, 5.0)
    env = {"MODGATE_MAX_BATCH_SIZE": "16", "MODGATE_MAX_BATCH_WAIT_MS": "2.5"}
    settings = load_settings(env=env)
    assert (settings.max_batch_size, settings.max_batch_wait_ms) == (16, 2.5)
    for bad in ({"max_batch_size": 0}, {"max_batch_wait_ms": -1.0}, {"max_batch_wait_ms": float("nan")}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            Settings(**bad)  # type: ignore[arg-type]


async def test_a_long_prompt_joining_a_running_batch_is_prefilled_in_chunks(
    generator: Generator, make_batcher: Callable[..., Batcher]
) -> None:
    """The running row keeps decoding between the joiner's prefill chunks; both texts are exactly what
    each prompt gives alone. An idle batcher prefills the same prompt in one pass."""
    tok = generator.loaded.tokenizer
    long_prompt = tok.decode(tok(" ".join(PROMPTS) * 8)["input_ids"][:150])
    width = len(tok(long_prompt)["input_ids"])
    steps_seen: list[int] = []
    batcher = make_batcher(prefill_chunk=16, observe_rows=steps_seen.append)
    running_params = SamplingParams(do_sample=False, max_new_tokens=60, min_new_tokens=60)
    joiner_params = SamplingParams(do_sample=False, max_new_tokens=10)
    running = run(batcher, PROMPTS[1], running_params)
    await wait_for(lambda: batcher.running_rows == 1 and len(steps_seen) >= 2)
    before = batcher.stats()
    steps_before = len(steps_seen)
    joiner = run(batcher, long_prompt, joiner_params)
    await wait_for(lambda: batcher.running_rows == 2)
    during = len(steps_seen) - steps_before
    after = batcher.stats()
    assert after.prefill_chunks - before.prefill_chunks == -(-width // 16)
    assert during >= -(-width // 16) - 1, "the running row got a step after each chunk but the last"
    assert await running == generator.generate(PROMPTS[1], running_params, should_stop=NEVER)
    assert await joiner == generator.generate(long_prompt, joiner_params, should_stop=NEVER)

    idle = batcher.stats()
    await run(batcher, long_prompt, joiner_params)
    assert batcher.stats().prefill_chunks - idle.prefill_chunks == 1


async def test_a_chunked_prefill_whose_caller_gave_up_is_dropped(
    generator: Generator, make_batcher: Callable[..., Batcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_advance = PendingPrefill.advance

    def slow_advance(self: PendingPrefill, model: object, columns: int) -> object:
        time.sleep(0.02)  # widen the window in which the caller cancels
        return real_advance(self, model, columns)

    monkeypatch.setattr(PendingPrefill, "advance", slow_advance)
    tok = generator.loaded.tokenizer
    long_prompt = tok.decode(tok(" ".join(PROMPTS) * 8)["input_ids"][:150])
    chunks = -(-len(tok(long_prompt)["input_ids"]) // 4)
    batcher = make_batcher(prefill_chunk=4)
    running = run(batcher, PROMPTS[1], SamplingParams(do_sample=False, max_new_tokens=40, min_new_tokens=40))
    await wait_for(lambda: batcher.running_rows == 1)
    before = batcher.stats()
    cancel = threading.Event()
    joiner = run(batcher, long_prompt, SamplingParams(do_sample=False, max_new_tokens=5), cancel=cancel)
    await wait_for(lambda: batcher.stats().prefill_chunks - before.prefill_chunks >= 2)
    cancel.set()
    with pytest.raises(Cancelled):
        await joiner
    assert batcher.stats().prefill_chunks - before.prefill_chunks < chunks, "dropped before the end"
    assert batcher.stats().cancelled == before.cancelled + 1
    assert len((await running)[0].text) > 0, "the running request was not disturbed"
