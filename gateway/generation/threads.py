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
"""

from __future__ import annotations

__all__ = ["confine_main_thread"]


def confine_main_thread() -> int:
    """Sets this (the main) thread to one torch thread and returns the count torch would have used, for
    the batcher's thread. Call it before torch runs any parallel operator in this process."""
    import torch

    count = torch.get_num_threads()
    torch.set_num_threads(1)
    return count
