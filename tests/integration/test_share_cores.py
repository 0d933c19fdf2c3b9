"""`share_cores` through the real server (gateway/generation/threads.py): when a call's rows all finish
and the decoder has nothing else to do, its outputs' moderation round is shared with the idle core, and
every output gets exactly the text and decision it gets without sharing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import torch

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.client import sampling_parameters
from gateway.generation.generator import Generator
from gateway.generation.threads import CoreSharing
from gateway.storage.engine import make_engine
from moderation.types import Action
from tests.integration.conftest import PROMPT, gateway_components, policy_for, word_moderator
from tests.integration.gateway_harness import ServerThread

WORDS = ("a", "the", "one", "two", "red", "old", "new", "big", "all", "six")
PROMPTS = [f"{PROMPT} {word}" for word in WORDS]


@pytest.fixture
def serve(generator: Generator, db_url: str, flag_word: str) -> Iterator:
    """Starts gateways as `serve` would run them on 2 cores (torch_threads set), with a word list that
    holds `flag_word`."""
    engine = make_engine(db_url)
    restore = torch.get_num_threads()
    started: list[ServerThread] = []

    def start(**settings: object) -> ServerThread:
        policy = policy_for(Action.MASK)
        moderator = word_moderator(flag_word, policy)
        components = gateway_components(generator, moderator, engine, max_batch_size=16, **settings)
        components.torch_threads = 2
        started.append(ServerThread(components).start())
        return started[-1]

    yield start
    for server in started:
        server.stop(grace=1)
    engine.dispose()
    torch.set_num_threads(restore)  # torch's default for threads started later, as before


def outputs(server: ServerThread) -> list[tuple[str, int]]:
    """One call with every prompt: its rows start and finish together (min = max new tokens)."""
    request = gen_pb.GenerateRequest(
        input_string=PROMPTS,
        parameters=sampling_parameters(seed=11, max_new_tokens=24, min_new_tokens=24),
    )
    with grpc.insecure_channel(server.address) as channel:
        response = gen_grpc.GenerationServiceStub(channel).Generate(request, timeout=120)
    return [(o.text, o.moderation.action) for o in response.outputs]


def test_a_round_takes_the_idle_core_and_changes_no_output(serve) -> None:  # type: ignore[no-untyped-def]
    shared = serve()
    assert shared.server is not None
    assert isinstance(shared.server.batcher._threads_now.__self__, CoreSharing)  # type: ignore[union-attr]
    got = outputs(shared)
    assert shared.server.moderation_batcher.helper_chunks >= 1  # 10 texts: chunks on both cores

    alone = serve(share_cores=False)
    assert alone.server is not None and alone.server.batcher._threads_now is None
    want = outputs(alone)
    assert alone.server.moderation_batcher.helper_chunks == 0
    assert got == want and len(got) == len(PROMPTS)
