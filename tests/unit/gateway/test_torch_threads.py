"""The server's torch threads (gateway/generation/threads.py): the batcher's thread and the moderation
worker's threads run torch with the counts they are given, whatever the calling thread uses; the
main thread is confined to one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import torch

from gateway.generation.batcher import Batcher
from gateway.generation.generator import Generator
from gateway.generation.model import load_model
from gateway.generation.params import SamplingParams
from gateway.generation.threads import CoreSharing, confine_main_thread
from gateway.generation.worker import Worker


def in_new_thread(fn):  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}
    thread = threading.Thread(target=lambda: out.update(result=fn()))
    thread.start()
    thread.join()
    return out["result"]


def test_confine_main_thread_sets_one_and_returns_the_previous_count() -> None:
    restore = torch.get_num_threads()

    def body() -> tuple[int, int]:
        torch.set_num_threads(3)
        before = confine_main_thread()
        after = torch.get_num_threads()
        # torch also keeps the last count set as the default of threads started later: put it back.
        torch.set_num_threads(restore)
        return before, after

    assert in_new_thread(body) == (3, 1)  # in a thread of its own: the test process keeps its count


def test_the_moderation_worker_runs_torch_with_its_own_thread_count() -> None:
    restore = torch.get_num_threads()

    async def main() -> tuple[int, int]:
        # The default worker first: torch takes the last count set anywhere as the default of threads
        # started later (the server sets the batcher's count explicitly for that reason).
        default = Worker("default", max_queue=4)
        confined = Worker("confined", max_queue=4, torch_threads=1)
        try:
            return (
                await default.run(threading.Event(), torch.get_num_threads),
                await confined.run(threading.Event(), torch.get_num_threads),
            )
        finally:
            confined.shutdown()
            default.shutdown()

    try:
        default, confined = asyncio.run(main())
    finally:
        torch.set_num_threads(restore)
    assert confined == 1
    assert default == restore


def threads_per_forward(demo_model_dir: Path, new_tokens: int, **batcher_options: object) -> list[int]:
    """torch's thread count in each forward pass of one greedy request through a Batcher."""
    generator = Generator(load_model(str(demo_model_dir), revision=None, device="cpu", dtype="float32"))
    seen: list[int] = []
    original = generator.loaded.model.forward

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    generator.loaded.model.forward = spy
    restore = torch.get_num_threads()
    batcher = Batcher(generator, max_batch_size=2, max_wait_ms=0, max_queue=2, **batcher_options)  # type: ignore[arg-type]
    try:
        params = SamplingParams(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        asyncio.run(batcher.generate("Hello", params, cancel=threading.Event(), should_stop=lambda: False))
    finally:
        batcher.shutdown()
        torch.set_num_threads(restore)  # torch's default for threads started later, as before
    return seen


def test_the_batcher_thread_runs_torch_with_the_count_it_is_given(demo_model_dir: Path) -> None:
    want = 1 if torch.get_num_threads() != 1 else 2
    seen = threads_per_forward(demo_model_dir, 3, torch_threads=want)
    assert seen and set(seen) == {want}


def test_the_batcher_asks_for_its_thread_count_before_each_pass(demo_model_dir: Path) -> None:
    """`threads_now` (share_cores) is asked before every pass over the batch and followed."""
    counts = iter([2, 1, 2, 1, 1])  # one per pass: the prefill and the first step share the first
    seen = threads_per_forward(demo_model_dir, 6, torch_threads=2, threads_now=lambda: next(counts, 2))
    assert seen == [2, 2, 1, 2, 1, 1]  # forwards: prefill, then 5 steps (6 tokens)


def test_core_sharing_gives_the_decoder_the_cores_moderation_leaves() -> None:
    async def main() -> list[int]:
        moderation = Worker("moderation", max_queue=4)
        helpers = Worker("moderation-idle", max_queue=4, threads=2)
        sharing = CoreSharing(4, moderation, helpers)
        release = threading.Event()
        seen = [sharing.decoder_threads()]
        jobs = [asyncio.ensure_future(moderation.run(threading.Event(), release.wait))]
        await asyncio.sleep(0)
        seen.append(sharing.decoder_threads())
        jobs.append(asyncio.ensure_future(moderation.run(threading.Event(), release.wait)))  # queued
        jobs += [asyncio.ensure_future(helpers.run(threading.Event(), release.wait)) for _ in range(3)]
        await asyncio.sleep(0)
        seen.append(sharing.decoder_threads())  # 1 + 2 threads busy: one core left
        release.set()
        await asyncio.gather(*jobs)
        seen.append(sharing.decoder_threads())
        moderation.shutdown()
        helpers.shutdown()
        return seen

    assert asyncio.run(main()) == [4, 3, 1, 4]
    with_one_core = CoreSharing(2, Worker("m", max_queue=1), Worker("h", max_queue=1))
    assert with_one_core.decoder_threads() == 2
