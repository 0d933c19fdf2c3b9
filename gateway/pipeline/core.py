"""The generation pipeline, independent of the transport: validate, admit, record, generate, moderate,
record the outcome, and only then hand back what may be released.

Every front door uses it: the gRPC servicer (`gateway/rpc/services/generation.py`), the HTTP `/score`
endpoint (`gateway/web/score.py`) and the OpenAI-compatible `/v1` (`gateway/web/openai/`), so that the
invariant, the rate limits and the audit trail are the same whichever way a client comes in. What an
edge sends is decided by `Decision.releasable` and nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.errors import FailedPrecondition, InvalidArgument
from gateway.generation.batcher import Batcher
from gateway.generation.generator import GeneratedSequence, Generator
from gateway.generation.params import (
    Limits,
    RawParams,
    SamplingParams,
    check_context,
    resolve,
    validate_prompt,
    validate_prompts,
)
from gateway.generation.worker import Worker
from gateway.ops.metrics import observe_decisions
from gateway.pipeline.callers import Caller
from gateway.pipeline.moderation_batching import ModerationBatcher
from gateway.pipeline.ratelimit import Limiter
from gateway.pipeline.ratelimit import Limits as RateLimits
from gateway.pipeline.recording import (
    ClientTags,
    OutcomeHook,
    OutputRecord,
    Recorder,
    ReleasedPrefix,
    RequestHandle,
)
from gateway.pipeline.screening import PromptScreen, screened_records
from gateway.policies.live import LiveModerator, current_moderator, moderator_for_call
from moderation.moderator import Moderator
from moderation.types import Decision

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallContext:
    request_id: str
    tenant: str
    policy: str | None
    api_key_id: str | None
    rate_key: str
    limits: RateLimits
    reserved_tokens: int


@dataclass
class Admission:
    """A call let in: who, its committed record, and the tokens it generated (for the rate limiter)."""

    call: CallContext
    record: RequestHandle | None = None
    generated_tokens: int = 0
    # The prompts' token ids, encoded off the event loop after admission (`GenerationPipeline.admitted`).
    prompt_ids: list[list[int]] = dataclasses.field(default_factory=list)
    # A stream's text sent so far, for the record if the call ends early (None: nothing to record).
    released: Callable[[], ReleasedPrefix | None] = lambda: None

    @property
    def handle(self) -> RequestHandle:
        assert self.record is not None, "used only inside admitted(), after the request was recorded"
        return self.record


@dataclass(frozen=True)
class Outcome:
    """One output as decided and recorded. `ticket`: held (fetch the result) or blocked (appeal)."""

    record: OutputRecord
    ticket: str | None

    @property
    def decision(self) -> Decision:
        return self.record.decision


@dataclass(frozen=True)
class Completed:
    request_id: str
    model: str
    seed: int
    outcomes: list[Outcome]


@dataclass(frozen=True)
class StreamStarted:
    request_id: str
    model: str
    seed: int


@dataclass(frozen=True)
class StreamFinished:
    outcome: Outcome


StreamEvent = StreamStarted | str | StreamFinished

NUL, REPLACEMENT = "\x00", "\ufffd"


def storable(text: str) -> str:
    """NUL cannot be stored in a PostgreSQL text column (the insert fails and the output is lost). The
    decoders never choose a token that decodes to NUL (`LoadedModel.nul_token_ids`); this is the backstop
    for a vocabulary where that search missed one. One character for one, so moderation spans, stream
    prefixes and the recorded text stay aligned."""
    if NUL not in text:
        return text
    log.warning("generated text held NUL; stored and moderated with U+FFFD in its place")
    return text.replace(NUL, REPLACEMENT)


def _storable_sequence(sequence: GeneratedSequence) -> GeneratedSequence:
    text = storable(sequence.text)
    return sequence if text is sequence.text else dataclasses.replace(sequence, text=text)


class GenerationPipeline:
    def __init__(
        self,
        *,
        generator: Generator,
        moderator: Moderator | LiveModerator,
        recorder: Recorder,
        limits: Limits,
        batcher: Batcher,
        moderation_worker: Worker,
        limiter: Limiter,
        default_limits: RateLimits,
        moderation_batcher: ModerationBatcher | None = None,
        served_model: str | None = None,
    ) -> None:
        """`moderation_batcher`: moderate unary outputs of concurrent calls together (the server's).
        `served_model`: the model's name in answers (default the loaded model's id, which for a local
        model is its directory path: records keep that one). `moderator`: a LiveModerator when policies
        can change at runtime; each call takes its current moderator once and keeps it to the end."""
        self.served_model = served_model or generator.model_id
        self._mod_batcher = moderation_batcher
        self._generator = generator
        self._moderator = moderator
        self._recorder = recorder
        self._limits = generator.limits(limits)
        self._batcher = batcher
        self._mod_worker = moderation_worker
        self._limiter = limiter
        self._default_limits = default_limits
        self._screen = PromptScreen(moderation_worker)

    @property
    def model_id(self) -> str:
        return self._generator.model_id

    def prepare(
        self, prompts: list[str], raw: RawParams, *, field: str, stream: bool = False
    ) -> SamplingParams:
        """Validates the prompts (`field` names them as the client spelled it) and the parameters against
        the model's limits; raises InvalidArgument naming the first bad field. Cheap checks only: the
        prompts are tokenised (to check they fit the context) after admission, see `_check_contexts`."""
        if stream:
            validate_prompt(prompts[0], self._limits, field=field)
        else:
            validate_prompts(prompts, self._limits, field=field)
        params = resolve(raw, self._limits)
        if stream and params.num_return_sequences != 1:
            raise InvalidArgument(
                "parameters.num_return_sequences", "a stream carries one sequence; use Generate for several"
            )
        return params

    async def _admit(
        self, caller: Caller, request_id: str, params: SamplingParams, prompts: list[str]
    ) -> CallContext:
        """Checks the key's policy and rate limits, which reserve the most tokens the request can
        generate (`admitted` gives back what was not used)."""
        if caller.policy is not None and caller.policy not in current_moderator(self._moderator).policy_names:
            raise FailedPrecondition(
                f"this API key's moderation policy {caller.policy!r} is not configured on this gateway"
            )
        limits = self._default_limits.overridden(
            requests_per_minute=caller.requests_per_minute, tokens_per_minute=caller.tokens_per_minute
        )
        reserved = len(prompts) * params.num_return_sequences * params.max_new_tokens
        if not limits.unlimited:  # off the loop: the shared limiter is a database transaction
            await asyncio.to_thread(self._limiter.admit, caller.rate_key, limits, tokens=reserved)
        return CallContext(
            request_id=request_id,
            tenant=caller.tenant,
            policy=caller.policy,
            api_key_id=caller.key_id,
            rate_key=caller.rate_key,
            limits=limits,
            reserved_tokens=reserved,
        )

    def _encode_checked(self, prompts: list[str], params: SamplingParams, name: str) -> list[list[int]]:
        """Each prompt's token ids, once it is known to fit the context with `max_new_tokens`."""
        encoded = []
        for i, prompt in enumerate(prompts):
            ids = self._generator.encode(prompt)
            where = name if len(prompts) == 1 else f"{name}[{i}]"
            check_context(len(ids), params, self._limits, field=where)
            encoded.append(ids)
        return encoded

    @asynccontextmanager
    async def admitted(
        self,
        caller: Caller,
        request_id: str,
        params: SamplingParams,
        prompts: list[str],
        *,
        stream: bool,
        field: str = "input_string",
        tags: ClientTags | None = None,
    ) -> AsyncIterator[Admission]:
        """Admits the call, commits its record before any generation work, marks the record failed or
        cancelled if the body raises, and gives back unused reserved tokens.

        The prompts are tokenised after the rate-limit check and off the event loop: a flood of
        32,000-character prompts from a key over its limit costs no tokenizer time, and one that is let
        in does not stall every other call while it is tokenised. A prompt too long for the context is
        refused here (INVALID_ARGUMENT, nothing recorded; the request still counts against the limit)."""
        call = await self._admit(caller, request_id, params, prompts)
        admission = Admission(call=call)
        try:
            admission.prompt_ids = await asyncio.to_thread(self._encode_checked, prompts, params, field)
            admission.record = await self._recorder.request_received(
                request_id=call.request_id,
                tenant=call.tenant,
                api_key_id=call.api_key_id,
                model_id=self._generator.model_id,
                model_revision=self._generator.loaded.revision,
                params=params,
                prompts=prompts,
                stream=stream,
                tags=tags,
            )
            async with self._recorder.failure_guard(admission.record, lambda: admission.released()):
                yield admission
        finally:
            await self._refund(call, call.reserved_tokens - admission.generated_tokens)

    async def _refund(self, call: CallContext, tokens: int) -> None:
        """Gives back reserved tokens that were not generated. Never raises: the call's own outcome
        (already recorded) must not be replaced by a failure to refund, which only under-admits later."""
        if call.limits.unlimited or tokens <= 0:
            return
        try:
            await asyncio.to_thread(self._limiter.refund, call.rate_key, call.limits, tokens=tokens)
        except Exception:
            log.warning("could not give back %d reserved tokens of %s", tokens, call.rate_key, exc_info=True)

    async def generate(
        self,
        caller: Caller,
        request_id: str,
        prompts: list[str],
        params: SamplingParams,
        *,
        cancel: threading.Event,
        should_stop: Callable[[], bool],
        field: str = "input_string",
        tags: ClientTags | None = None,
        screen: bool = True,
        then: OutcomeHook | None = None,
    ) -> Completed:
        """Every sequence of every prompt, moderated in one batch and recorded before returning. `field`:
        the prompts' name in the client's request, for errors. `tags`: what the client says about the call
        (OpenAI's `user`, `metadata`), recorded with the request for abuse tracing.
        `screen=False`: no prompt screening (a reviewer approved the prompt;
        gateway/pipeline/prompt_worker.py); `then`: runs in the outcome's transaction (`Recorder.outcome`)."""
        async with self.admitted(
            caller, request_id, params, prompts, stream=False, field=field, tags=tags
        ) as admission:
            pinned = moderator_for_call(
                self._moderator, admission.call.tenant, admission.call.policy
            )  # a policy change never lands mid-call
            verdicts = (
                await self._screen.screen(
                    prompts, moderator=pinned, policy=admission.call.policy, cancel=cancel
                )
                if screen
                else [None] * len(prompts)
            )
            kept = [i for i, v in enumerate(verdicts) if v is None or not v.screened_out]
            generated: list[tuple[int, str, GeneratedSequence]] = []
            per_prompt = (
                await self._batcher.generate_many(
                    [prompts[i] for i in kept],
                    params,
                    cancel=cancel,
                    should_stop=should_stop,
                    prompt_ids=[admission.prompt_ids[i] for i in kept],
                )
                if kept
                else []
            )
            for index, sequences in zip(kept, per_prompt, strict=True):
                generated.extend((index, prompts[index], _storable_sequence(s)) for s in sequences)
                admission.generated_tokens += sum(s.generated_tokens for s in sequences)
            texts = [s.text for _, _, s in generated]
            if not texts:
                decisions = []
            elif self._mod_batcher is not None:
                decisions = await self._mod_batcher.moderate(
                    texts, policy=admission.call.policy, moderator=pinned
                )
            else:
                decisions = await self._mod_worker.run(
                    cancel, pinned.moderate, texts, policy=admission.call.policy
                )
            records = [
                OutputRecord(prompt_index=i, prompt=p, sequence=s, decision=d)
                for (i, p, s), d in zip(generated, decisions, strict=True)
            ]
            for i, verdict in enumerate(verdicts):
                if verdict is not None and verdict.screened_out:
                    records += screened_records(
                        prompt_index=i,
                        prompt=prompts[i],
                        verdict=verdict,
                        sequences=params.num_return_sequences,
                        prompt_tokens=len(admission.prompt_ids[i]),
                    )
            records.sort(key=lambda r: (r.prompt_index, r.sequence.sequence_index))
            tickets = await self._recorder.outcome(admission.handle, records, then=then)
            observe_decisions([r.decision for r in records], admission.generated_tokens)
        return Completed(
            request_id=request_id,
            model=self.served_model,
            seed=params.seed,
            outcomes=[Outcome(r, t) for r, t in zip(records, tickets, strict=True)],
        )

    async def stream(
        self,
        caller: Caller,
        request_id: str,
        prompt: str,
        params: SamplingParams,
        *,
        cancel: threading.Event,
        should_stop: Callable[[], bool],
        field: str = "input_string",
        tags: ClientTags | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """StreamStarted, then released text chunks (each scored before it is yielded), then
        StreamFinished with the outcome of the whole text (recorded before it is yielded).

        Everything that can refuse the call (the key's policy, the rate limit, the prompt's length in
        tokens, recording the request) happens before StreamStarted: an edge that must answer a refusal
        before its first byte (HTTP's status line) takes that first event, then starts its answer. An
        edge that stops iterating early closes the generator (`aclose`): the record is marked cancelled
        and unused tokens are given back. `field`: the prompt's name in the client's request, for errors."""
        released: list[str] = []
        async with self.admitted(
            caller, request_id, params, [prompt], stream=True, field=field, tags=tags
        ) as admission:
            yield StreamStarted(request_id=request_id, model=self.served_model, seed=params.seed)
            pinned = moderator_for_call(
                self._moderator, admission.call.tenant, admission.call.policy
            )  # the stream ends on the rules it started with
            (verdict,) = await self._screen.screen(
                [prompt], moderator=pinned, policy=admission.call.policy, cancel=cancel
            )
            if verdict is not None and verdict.screened_out:  # no generation: the prompt was withheld
                (record,) = screened_records(
                    prompt_index=0,
                    prompt=prompt,
                    verdict=verdict,
                    sequences=1,
                    prompt_tokens=len(admission.prompt_ids[0]),
                )
                (ticket,) = await self._recorder.outcome(admission.handle, [record])
                observe_decisions([record.decision], 0)
                rest = ""
            else:
                moderator = pinned.stream(policy=admission.call.policy)
                policy = pinned.policy(admission.call.policy)

                def released_so_far() -> ReleasedPrefix:
                    return ReleasedPrefix(
                        prompt=prompt,
                        generated_text=moderator.text,
                        released_text="".join(released),
                        policy_name=policy.name,
                        policy_version=policy.version,
                        prompt_tokens=len(admission.prompt_ids[0]),
                    )

                admission.released = released_so_far
                deltas: asyncio.Queue[str] = asyncio.Queue()
                loop = asyncio.get_running_loop()

                def on_text(delta: str) -> None:  # called on the batcher's thread
                    loop.call_soon_threadsafe(deltas.put_nowait, storable(delta))

                generation = asyncio.ensure_future(
                    self._batcher.generate_stream(
                        prompt,
                        params,
                        cancel=cancel,
                        should_stop=should_stop,
                        on_text=on_text,
                        prompt_ids=admission.prompt_ids[0],
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
                            delta = ""
                        # Text that arrived while the previous round was being scored goes into one
                        # `feed`: one scoring call per round instead of one per word, so a moderator slower
                        # than generation (detoxify on a CPU) falls behind by one round, not by O(words).
                        while not deltas.empty():
                            delta += deltas.get_nowait()
                        chunk = await self._mod_worker.run(cancel, moderator.feed, delta)
                        if chunk:
                            released.append(chunk)
                            yield chunk
                    sequence = _storable_sequence(generation.result())
                    admission.generated_tokens = sequence.generated_tokens
                finally:
                    if not generation.done():
                        cancel.set()
                        generation.cancel()
                rest, decision = await self._mod_worker.run(cancel, moderator.finish)
                if rest:
                    released.append(rest)
                record = OutputRecord(
                    prompt_index=0,
                    prompt=prompt,
                    sequence=sequence,
                    decision=decision,
                    streamed_text="".join(released),
                )
                # From here the outcome records the whole text: a failure while recording it must not also
                # insert the prefix row (the outcome's transaction may still commit in its thread).
                admission.released = lambda: None
                (ticket,) = await self._recorder.outcome(admission.handle, [record])
                observe_decisions([decision], admission.generated_tokens)
        if rest:
            yield rest
        yield StreamFinished(Outcome(record, ticket))
