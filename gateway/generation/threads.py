"""Which threads of the server run torch's parallel (OpenMP) work, and with how many threads each.

Why: torch's CPU operators parallelise with OpenMP, and each thread that calls them gets its own
OpenMP team. `modgate serve` runs torch in three threads: the main thread (loading), the batcher's
(decoding) and the moderation worker's (scoring). Measured on host C (2 cores; docs/benchmarks.md,
"Round 2"): a one-row GPT-Neo-125M decoding step took 27 ms in the main thread but 39-41 ms in another
thread once the main thread's team existed (its small operators, softmax, tanh, the attention's
`bmm`, took ~10x longer: every parallel region waited on thread wake-ups), which made a lone request
~30% slower through the gateway than through a plain script. With the main thread kept to one torch
thread from the start (so it never creates a team), the batcher's thread with 2 threads stepped in
28-30 ms. The moderation worker gets one thread: a second team of two would bring the wake-up delays
back, and on a machine with few cores moderation on its own core does not take the decoder's.

`confine_main_thread` is for the server process only (called before anything loads); tests and tools
that build components in their own process keep torch's defaults.

`CoreSharing` (setting `share_cores`, when moderation scores on the CPU) moves cores between the two
by load. Measured on host D (2 cores; docs/benchmarks.md, round 4), 16-row decoding steps: 41 ms on 2
threads alone, 74 ms on 2 threads while a moderation thread scores, 66-68 ms on 1 thread while it
scores (moderation ~9 texts/s in both cases): with more busy threads than cores, the decoder's team
waits on its preempted member at every parallel region. So while moderation work runs, the decoder
steps with one thread fewer per busy moderation thread (never fewer than one). And while the decoder
is idle, moderation rounds take the other cores too (`helpers` in
gateway/pipeline/moderation_batching.py).
"""

from __future__ import annotations

from gateway.generation.worker import Worker

__all__ = ["CoreSharing", "confine_main_thread"]


def confine_main_thread() -> int:
    """Sets this (the main) thread to one torch thread and returns the count torch would have used, for
    the batcher's thread. Call it before torch runs any parallel operator in this process."""
    import torch

    count = torch.get_num_threads()
    torch.set_num_threads(1)
    return count


class CoreSharing:
    """The decoder's thread count for its next step, from the moderation work in flight."""

    def __init__(self, cores: int, moderation: Worker, helpers: Worker | None) -> None:
        """`cores`: the batcher's thread count when moderation is idle; `moderation`: the moderation
        worker (one thread); `helpers`: the workers that take rounds' chunks while the decoder is idle."""
        self._cores = cores
        self._moderation = moderation
        self._helpers = helpers

    def decoder_threads(self) -> int:
        busy = min(self._moderation.pending, self._moderation.threads)
        if self._helpers is not None:
            busy += min(self._helpers.pending, self._helpers.threads)
        return max(1, self._cores - busy)
