"""The GenerationService servicer: proto in, pipeline call, proto out.

All the work (validation, admission, recording, generation, moderation) is in `gateway/pipeline/core.py`,
shared with the HTTP edge; this module only translates and turns a gRPC deadline or cancellation into
the `should_stop` the generation loop checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable

import grpc

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.pipeline.callers import current_caller
from gateway.pipeline.core import GenerationPipeline, StreamFinished, StreamStarted
from gateway.pipeline.request_ids import request_id_var
from gateway.rpc.services.convert import output_to_pb, raw_params_from_pb, result_to_pb
from gateway.rpc.services.results import ResultReader


def _should_stop(cancel: threading.Event, context: grpc.aio.ServicerContext) -> Callable[[], bool]:
    """Generation checks this after every token: a cancelled call or a passed deadline stops it."""
    remaining = context.time_remaining()
    deadline = time.monotonic() + remaining if remaining is not None else None

    def should_stop() -> bool:
        return cancel.is_set() or (deadline is not None and time.monotonic() > deadline)

    return should_stop


class GenerationServicer(gen_grpc.GenerationServiceServicer):
    def __init__(self, *, pipeline: GenerationPipeline, results: ResultReader) -> None:
        self._pipeline = pipeline
        self._results = results

    async def Generate(
        self, request: gen_pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.GenerateResponse:
        prompts = list(request.input_string)
        params = self._pipeline.prepare(prompts, raw_params_from_pb(request.parameters), field="input_string")
        cancel = threading.Event()
        done = await self._pipeline.generate(
            current_caller(),
            request_id_var.get(),
            prompts,
            params,
            cancel=cancel,
            should_stop=_should_stop(cancel, context),
        )
        withheld = any(not o.decision.releasable for o in done.outcomes)
        return gen_pb.GenerateResponse(
            request_id=done.request_id,
            model=done.model,
            # The seed would let a client rerun a withheld text with stop sequences as an oracle.
            seed=0 if withheld else done.seed,
            outputs=[
                output_to_pb(
                    prompt_index=o.record.prompt_index,
                    sequence=o.record.sequence,
                    decision=o.decision,
                    ticket=o.ticket,
                )
                for o in done.outcomes
            ],
        )

    async def GenerateStream(
        self, request: gen_pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.GenerateStreamResponse]:
        prompt = request.input_string
        params = self._pipeline.prepare(
            [prompt], raw_params_from_pb(request.parameters), field="input_string", stream=True
        )
        cancel = threading.Event()
        events = self._pipeline.stream(
            current_caller(),
            request_id_var.get(),
            prompt,
            params,
            cancel=cancel,
            should_stop=_should_stop(cancel, context),
        )
        async for event in events:
            if isinstance(event, StreamStarted):
                # Sent before the decision, so only a seed the client chose (and knows): a seed the
                # server drew could replay a text that then turns out withheld.
                seed = event.seed if request.parameters.HasField("seed") else 0
                start = gen_pb.StreamStart(request_id=event.request_id, model=event.model, seed=seed)
                yield gen_pb.GenerateStreamResponse(start=start)
            elif isinstance(event, StreamFinished):
                o = event.outcome
                yield gen_pb.GenerateStreamResponse(
                    final=output_to_pb(
                        prompt_index=0,
                        sequence=o.record.sequence,
                        decision=o.decision,
                        ticket=o.ticket,
                        include_text=False,
                    )
                )
            else:
                yield gen_pb.GenerateStreamResponse(text=event)

    async def GetResult(
        self, request: gen_pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.Result:
        return result_to_pb(await self._results.get(request.ticket, current_caller()))

    async def WatchResult(
        self, request: gen_pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.Result]:
        async for view in self._results.watch(request.ticket, current_caller()):
            yield result_to_pb(view)

    async def Appeal(self, request: gen_pb.AppealRequest, context: grpc.aio.ServicerContext) -> gen_pb.Result:
        return result_to_pb(await self._results.appeal(request.ticket, request.reason, current_caller()))
