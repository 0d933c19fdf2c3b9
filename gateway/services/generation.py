"""The GenerationService servicer: proto in, domain calls, proto out.

Order of work for every call: validate, record the request, generate, moderate, record the outcome
(held outputs get their review item and ticket in the same transaction), and only then answer. No text
leaves here that the moderator did not release.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from gateway.api.v1 import generation_pb2 as gen_pb
from gateway.api.v1 import generation_pb2_grpc as gen_grpc
from gateway.auth import current_caller
from gateway.errors import FailedPrecondition, InvalidArgument
from gateway.generation.batcher import Batcher
from gateway.generation.generator import GeneratedSequence, Generator
from gateway.generation.params import Limits, SamplingParams, check_context, resolve, validate_prompt
from gateway.generation.params import validate_prompts as validate_prompt_list
from gateway.generation.worker import Worker
from gateway.interceptors import request_id_var
from gateway.metrics import observe_decisions
from gateway.ratelimit import Limits as RateLimits
from gateway.ratelimit import RateLimiter
from gateway.recording import OutputRecord, Recorder, RequestHandle
from gateway.services.convert import output_to_pb, raw_params_from_pb, result_to_pb
from gateway.services.results import ResultReader
from moderation.moderator import Moderator


@dataclass
class Admission:
    """A call let in: who, its committed record, and the tokens it generated (for the rate limiter)."""

    call: CallContext
    record: RequestHandle | None = None
    generated_tokens: int = 0

    @property
    def handle(self) -> RequestHandle:
        assert self.record is not None, "used only inside _admitted, after the request was recorded"
        return self.record


@dataclass(frozen=True)
class CallContext:
    request_id: str
    tenant: str
    policy: str | None
    api_key_id: str | None
    rate_key: str
    limits: RateLimits
    reserved_tokens: int


def _should_stop(cancel: threading.Event, context: grpc.aio.ServicerContext) -> Callable[[], bool]:
    """Generation checks this after every token: a cancelled call or a passed deadline stops it."""
    remaining = context.time_remaining()
    deadline = time.monotonic() + remaining if remaining is not None else None

    def should_stop() -> bool:
        return cancel.is_set() or (deadline is not None and time.monotonic() > deadline)

    return should_stop


class GenerationServicer(gen_grpc.GenerationServiceServicer):
    def __init__(
        self,
        *,
        generator: Generator,
        moderator: Moderator,
        recorder: Recorder,
        limits: Limits,
        batcher: Batcher,
        moderation_worker: Worker,
        results: ResultReader,
        limiter: RateLimiter,
        default_limits: RateLimits,
    ) -> None:
        self._generator = generator
        self._moderator = moderator
        self._recorder = recorder
        self._limits = generator.limits(limits)
        self._batcher = batcher
        self._mod_worker = moderation_worker
        self._results = results
        self._limiter = limiter
        self._default_limits = default_limits

    def _call(self, params: SamplingParams, prompts: list[str]) -> CallContext:
        """Who is calling, checked against the key's policy and rate limits (which reserve the most
        tokens the request can generate; `_admitted` gives back what was not used)."""
        caller = current_caller()
        if caller.policy is not None and caller.policy not in self._moderator.policy_names:
            raise FailedPrecondition(
                f"this API key's moderation policy {caller.policy!r} is not configured on this gateway"
            )
        limits = self._default_limits.overridden(
            requests_per_minute=caller.requests_per_minute, tokens_per_minute=caller.tokens_per_minute
        )
        reserved = len(prompts) * params.num_return_sequences * params.max_new_tokens
        self._limiter.admit(caller.rate_key, limits, tokens=reserved)
        return CallContext(
            request_id=request_id_var.get(),
            tenant=caller.tenant,
            policy=caller.policy,
            api_key_id=caller.key_id,
            rate_key=caller.rate_key,
            limits=limits,
            reserved_tokens=reserved,
        )

    @asynccontextmanager
    async def _admitted(
        self, params: SamplingParams, prompts: list[str], *, stream: bool
    ) -> AsyncIterator[Admission]:
        """Admits the call (policy, rate limits), commits its record before any generation work, marks
        the record failed or cancelled if the body raises, and gives back unused reserved tokens."""
        call = self._call(params, prompts)
        admission = Admission(call=call)
        try:
            admission.record = await self._recorder.request_received(
                request_id=call.request_id,
                tenant=call.tenant,
                api_key_id=call.api_key_id,
                model_id=self._generator.model_id,
                model_revision=self._generator.loaded.revision,
                params=params,
                prompts=prompts,
                stream=stream,
            )
            async with self._recorder.failure_guard(admission.record):
                yield admission
        finally:
            self._limiter.refund(
                call.rate_key, call.limits, tokens=call.reserved_tokens - admission.generated_tokens
            )

    def _params(self, request_params: gen_pb.SamplingParameters, prompts: list[str]) -> SamplingParams:
        params = resolve(raw_params_from_pb(request_params), self._limits)
        for i, prompt in enumerate(prompts):
            name = "input_string" if len(prompts) == 1 else f"input_string[{i}]"
            check_context(self._generator.count_tokens(prompt), params, self._limits, field=name)
        return params

    async def Generate(
        self, request: gen_pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.GenerateResponse:
        prompts = list(request.input_string)
        validate_prompt_list(prompts, self._limits, field="input_string")
        params = self._params(request.parameters, prompts)
        cancel = threading.Event()
        should_stop = _should_stop(cancel, context)
        async with self._admitted(params, prompts, stream=False) as admission:
            call = admission.call
            generated: list[tuple[int, str, GeneratedSequence]] = []
            per_prompt = await self._batcher.generate_many(
                prompts, params, cancel=cancel, should_stop=should_stop
            )
            for index, (prompt, sequences) in enumerate(zip(prompts, per_prompt, strict=True)):
                generated.extend((index, prompt, s) for s in sequences)
                admission.generated_tokens += sum(s.generated_tokens for s in sequences)
            decisions = await self._mod_worker.run(
                cancel, self._moderator.moderate, [s.text for _, _, s in generated], policy=call.policy
            )
            outputs = [
                OutputRecord(prompt_index=i, prompt=p, sequence=s, decision=d)
                for (i, p, s), d in zip(generated, decisions, strict=True)
            ]
            tickets = await self._recorder.outcome(admission.handle, outputs)
            observe_decisions(decisions, admission.generated_tokens)
        return gen_pb.GenerateResponse(
            request_id=call.request_id,
            model=self._generator.model_id,
            seed=params.seed,
            outputs=[
                output_to_pb(prompt_index=o.prompt_index, sequence=o.sequence, decision=o.decision, ticket=t)
                for o, t in zip(outputs, tickets, strict=True)
            ],
        )

    async def GenerateStream(
        self, request: gen_pb.GenerateStreamRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.GenerateStreamResponse]:
        prompt = request.input_string
        validate_prompt(prompt, self._limits, field="input_string")
        params = self._params(request.parameters, [prompt])
        if params.num_return_sequences != 1:
            raise InvalidArgument(
                "parameters.num_return_sequences", "a stream carries one sequence; use Generate for several"
            )
        cancel = threading.Event()
        should_stop = _should_stop(cancel, context)
        released: list[str] = []
        async with self._admitted(params, [prompt], stream=True) as admission:
            call = admission.call
            yield gen_pb.GenerateStreamResponse(
                start=gen_pb.StreamStart(
                    request_id=call.request_id, model=self._generator.model_id, seed=params.seed
                )
            )
            moderator = self._moderator.stream(policy=call.policy)
            deltas: asyncio.Queue[str] = asyncio.Queue()
            loop = asyncio.get_running_loop()
            generation = asyncio.ensure_future(
                self._batcher.generate_stream(
                    prompt,
                    params,
                    cancel=cancel,
                    should_stop=should_stop,
                    on_text=lambda d: loop.call_soon_threadsafe(deltas.put_nowait, d),
                )
            )
            try:
                while not (generation.done() and deltas.empty()):
                    if deltas.empty():
                        waiter = asyncio.ensure_future(deltas.get())
                        await asyncio.wait({waiter, generation}, return_when=asyncio.FIRST_COMPLETED)
                        if not waiter.done():
                            waiter.cancel()
                            continue
                        delta = waiter.result()
                    else:
                        delta = deltas.get_nowait()
                    chunk = await self._mod_worker.run(cancel, moderator.feed, delta)
                    if chunk:
                        released.append(chunk)
                        yield gen_pb.GenerateStreamResponse(text=chunk)
                sequence = generation.result()
                admission.generated_tokens = sequence.generated_tokens
            finally:
                if not generation.done():
                    cancel.set()
                    generation.cancel()
            rest, decision = await self._mod_worker.run(cancel, moderator.finish)
            if rest:
                released.append(rest)
            output = OutputRecord(
                prompt_index=0,
                prompt=prompt,
                sequence=sequence,
                decision=decision,
                streamed_text="".join(released),
            )
            (ticket,) = await self._recorder.outcome(admission.handle, [output])
            observe_decisions([decision], admission.generated_tokens)
        if rest:
            yield gen_pb.GenerateStreamResponse(text=rest)
        yield gen_pb.GenerateStreamResponse(
            final=output_to_pb(
                prompt_index=0, sequence=sequence, decision=decision, ticket=ticket, include_text=False
            )
        )

    async def GetResult(
        self, request: gen_pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> gen_pb.Result:
        return result_to_pb(await self._results.read(request.ticket, current_caller()))

    async def WatchResult(
        self, request: gen_pb.GetResultRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[gen_pb.Result]:
        async for view in self._results.watch(request.ticket, current_caller()):
            yield result_to_pb(view)

    async def Appeal(self, request: gen_pb.AppealRequest, context: grpc.aio.ServicerContext) -> gen_pb.Result:
        return result_to_pb(await self._results.appeal(request.ticket, request.reason, current_caller()))
