"""Builds and runs the gateway: components loaded once, a grpc.aio server, graceful shutdown.

`serve(settings)` is what `modgate serve` calls; tests build `Components` once and start as many
`GatewayServer`s on free ports as they like.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute, Route

from gateway.api.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    qa_pb2,
    qa_pb2_grpc,
    review_pb2,
    review_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
    wordlist_pb2,
    wordlist_pb2_grpc,
)
from gateway.audit.keeper import AnchorKeeper, anchor_keeper, anchor_once
from gateway.audit.keeper import run_periodically as run_anchoring
from gateway.config import Settings, SettingsError, served_model_name
from gateway.generation.batcher import Batcher
from gateway.generation.generator import Generator
from gateway.generation.model import load_model
from gateway.generation.params import Limits
from gateway.generation.threads import CoreSharing, confine_main_thread
from gateway.generation.worker import Worker
from gateway.ops.maintenance import run_periodically
from gateway.ops.metrics import BATCH_SIZE, WORK_SECONDS, serve_metrics
from gateway.pipeline.callers import KeyAuthenticator
from gateway.pipeline.core import GenerationPipeline
from gateway.pipeline.moderation_batching import ModerationBatcher
from gateway.pipeline.moderation_setup import load_moderator, moderation_config, scores_on_cpu
from gateway.pipeline.prompt_worker import PromptRunWorker
from gateway.pipeline.ratelimit import Limits as RateLimits
from gateway.pipeline.ratelimit import RateLimiter
from gateway.pipeline.recording import Recorder
from gateway.pipeline.replay import replay
from gateway.policies.live import LiveModerator, LivePolicies
from gateway.policies.startup import stored_moderator
from gateway.policies.watcher import PolicyWatcher
from gateway.review.consensus import parse_consensus
from gateway.review.deadlines import Deadline, parse_deadlines
from gateway.review.qa import parse_qa
from gateway.rpc.auth import AuthInterceptor
from gateway.rpc.interceptors import ErrorInterceptor, RequestIdInterceptor
from gateway.rpc.metrics_interceptor import MetricsInterceptor
from gateway.rpc.services.audit import AuditServicer
from gateway.rpc.services.generation import GenerationServicer
from gateway.rpc.services.policy import PolicyServicer
from gateway.rpc.services.qa import QaServicer
from gateway.rpc.services.results import ResultReader, Watches
from gateway.rpc.services.review import ReviewServicer
from gateway.rpc.services.webhooks import WebhookServicer
from gateway.rpc.services.wordlist import WordListServicer
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory, normalize_url, redact_url
from gateway.storage.rate_buckets import DatabaseRateLimiter
from gateway.web import WebServer, WebStartupError, create_app
from gateway.web.edge import OWN_BODY_LIMIT
from gateway.web.openai import DEFAULT_CHAT_TEMPLATE, ChatTemplate, ChatTemplateError, OpenAIEndpoints
from gateway.web.score import ScoreEndpoint
from gateway.webhooks.delivery import RetryPolicy, WebhookWorker
from moderation.moderator import Moderator

log = logging.getLogger(__name__)

GENERATION_SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
REVIEW_SERVICE = review_pb2.DESCRIPTOR.services_by_name["ReviewService"].full_name
AUDIT_SERVICE = audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name
WEBHOOK_SERVICE = webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name
QA_SERVICE = qa_pb2.DESCRIPTOR.services_by_name["QaService"].full_name
POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
WORDLIST_SERVICE = wordlist_pb2.DESCRIPTOR.services_by_name["WordListService"].full_name
SERVICES = (
    GENERATION_SERVICE,
    REVIEW_SERVICE,
    AUDIT_SERVICE,
    WEBHOOK_SERVICE,
    QA_SERVICE,
    POLICY_SERVICE,
    WORDLIST_SERVICE,
)


class StartupError(RuntimeError):
    """The gateway cannot start; the message says why and what to do."""


@dataclass
class Components:
    """The heavy, long-lived parts: loaded once per process."""

    settings: Settings
    generator: Generator
    moderator: Moderator
    engine: Engine
    sessions: sessionmaker[Session]
    recorder: Recorder
    # The audit anchors this process makes and keeps (None: no anchor key configured).
    anchors: AnchorKeeper | None = None
    # The moderator under the stored policies, swapped when they change (None: `moderator` is fixed).
    live: LiveModerator | None = None
    # torch threads for the batcher's thread, with the moderation worker on one (None: torch's defaults
    # everywhere); `serve` sets it, see gateway/generation/threads.py.
    torch_threads: int | None = None

    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            max_prompts=s.max_prompts,
            max_new_tokens=s.max_new_tokens_limit,
            default_max_new_tokens=s.default_max_new_tokens,
            max_return_sequences=s.max_return_sequences,
            max_stop_sequences=s.max_stop_sequences,
            max_stop_length=s.max_stop_length,
            max_prompt_chars=s.max_prompt_chars,
        )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the configured PEM files, or None for a plaintext port."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    try:
        key = Path(settings.tls_key_file).read_bytes()
        cert = Path(settings.tls_cert_file).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read the TLS certificate or key: {exc}") from exc
    return grpc.ssl_server_credentials([(key, cert)])


def check_schema(url: str, *, upgrade: bool) -> None:
    """Refuses to run on an outdated schema (or upgrades it when asked): Alembic owns the schema."""
    if migrate.is_up_to_date(url):
        return
    if upgrade:
        log.info("upgrading database schema to %s", migrate.head())
        migrate.upgrade(url)
        return
    raise StartupError(
        f"the database schema at {redact_url(url)} is not at the latest revision "
        f"({migrate.current(url) or 'empty'} != {migrate.head()}). Run `modgate db upgrade` first, "
        "or start with `modgate serve --migrate`."
    )


def check_shared_session_secret(settings: Settings) -> None:
    """A PostgreSQL database means replicas may share it, and a random per-process session secret would
    log a reviewer out whenever the balancer sends them to another replica: refuse rather than half-work."""
    if not settings.web_enabled or settings.session_secret is not None:
        return
    if make_url(normalize_url(settings.database_url)).get_backend_name() != "postgresql":
        return
    raise StartupError(
        "session_secret is not set and the database is PostgreSQL, which replicas share: each replica "
        "would sign reviewer sessions with its own random secret, so a login on one replica would not "
        "hold on the next. Set MODGATE_SESSION_SECRET (32+ characters, the same on every replica), "
        "or serve without the web queue (--no-web)."
    )


def build_components(settings: Settings, *, migrate_schema: bool = False) -> Components:
    engine = make_engine(settings.database_url)
    check_schema(settings.database_url, upgrade=migrate_schema)
    loaded = load_model(
        settings.model,
        revision=settings.model_revision,
        device=settings.device,
        dtype=settings.dtype,
        prepack=settings.cpu_prepack,
        stock_rows=settings.cpu_prepack_stock_rows,
    )
    sessions = make_session_factory(engine)
    live = stored_moderator(
        load_moderator(settings), sessions, moderation_config(settings).get("policies", {})
    )
    try:
        anchors = anchor_keeper(settings)
    except SettingsError as exc:
        raise StartupError(str(exc)) from None
    return Components(
        settings=settings,
        generator=Generator(loaded),
        moderator=live.current,
        engine=engine,
        sessions=sessions,
        recorder=Recorder(sessions, qa_rates=qa_sample_rates(settings, live.current)),
        anchors=anchors,
        live=live,
    )


def webhook_worker(settings: Settings, sessions: sessionmaker[Session]) -> WebhookWorker:
    """The outbox's delivery worker with the settings' retry policy (docs/operations.md, "Webhooks")."""
    policy = RetryPolicy(
        timeout_s=settings.webhook_timeout_s,
        retry_base_s=settings.webhook_retry_base_s,
        retry_max_s=settings.webhook_retry_max_s,
        give_up_s=settings.webhook_give_up_s,
        keep_delivered_s=settings.webhook_keep_delivered_s,
    )
    return WebhookWorker(sessions, policy)


class GatewayServer:
    def __init__(
        self, components: Components, *, address: str | None = None, web_address: str | None = None
    ) -> None:
        """`web_address`: also serve the reviewer web queue there (`serve` passes the setting; tests
        pass "127.0.0.1:0" or leave it out for gRPC only)."""
        self._c = components
        self._address = address or components.settings.grpc_address
        self._web_address = web_address
        self.web: WebServer | None = None
        self._health = health.aio.HealthServicer()
        self._prompt_runs: asyncio.Task[None] | None = None  # gateway/pipeline/prompt_worker.py
        self.live = components.live or LiveModerator(components.moderator)
        settings = components.settings
        self._mod_worker = Worker(
            "moderation",
            max_queue=settings.max_queue * 4,
            observe=WORK_SECONDS.labels("moderation").observe,
            torch_threads=None if components.torch_threads is None else 1,
        )
        # Cores move between decoding and moderation by load (gateway/generation/threads.py); only in
        # `serve` (torch_threads set), with more than one core, and when moderation scores on the CPU.
        cores = components.torch_threads or 1
        sharing = settings.share_cores and cores > 1 and scores_on_cpu(components.moderator)
        self._mod_helpers = (
            Worker(
                "moderation-idle",
                threads=cores - 1,
                max_queue=settings.max_queue * 4,
                observe=WORK_SECONDS.labels("moderation").observe,
                torch_threads=1,
            )
            if sharing
            else None
        )
        self.batcher = Batcher(
            components.generator,
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_batch_wait_ms,
            max_queue=settings.max_queue,
            prefill_chunk=settings.prefill_chunk,
            torch_threads=components.torch_threads,
            threads_now=CoreSharing(cores, self._mod_worker, self._mod_helpers).decoder_threads
            if sharing
            else None,
            observe=WORK_SECONDS.labels("generation").observe,
            observe_rows=BATCH_SIZE.observe,
        )
        self.moderation_batcher = ModerationBatcher(
            self.live,
            self._mod_worker,
            helpers=self._mod_helpers,
            decoder_idle=self.batcher.idle if sharing else None,
        )
        # One limiter for generation and result calls: a key's requests per minute count them all.
        limiter = (
            DatabaseRateLimiter(components.sessions)
            if settings.rate_limit_store == "database"
            else RateLimiter()
        )
        default_limits = RateLimits(
            requests_per_minute=settings.default_requests_per_minute,
            tokens_per_minute=settings.default_tokens_per_minute,
        )
        self.pipeline = GenerationPipeline(
            generator=components.generator,
            moderator=self.live,
            recorder=components.recorder,
            limits=components.limits(),
            batcher=self.batcher,
            moderation_worker=self._mod_worker,
            limiter=limiter,
            default_limits=default_limits,
            moderation_batcher=self.moderation_batcher,
            served_model=served_model_name(components.settings),
        )
        self.results = ResultReader(
            components.sessions,
            limiter=limiter,
            default_limits=default_limits,
            watches=Watches(
                max_s=settings.watch_max_s,
                per_key=settings.watch_max_per_key,
                recheck_s=settings.watch_recheck_s,
            ),
        )
        authenticate = None if components.settings.insecure_no_auth else KeyAuthenticator(components.sessions)
        self._authenticate = authenticate
        # The first interceptor runs first. Errors wrap authentication, so that a failing key lookup
        # (database down) is mapped like any other call's error: UNAVAILABLE, no driver detail.
        self._server = grpc.aio.server(
            interceptors=[
                MetricsInterceptor(),
                RequestIdInterceptor(),
                ErrorInterceptor(),
                AuthInterceptor(authenticate),
            ]
        )
        self.port = 0

    async def start(self) -> int:
        servicer = GenerationServicer(pipeline=self.pipeline, results=self.results)
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, self._server)
        review_pb2_grpc.add_ReviewServiceServicer_to_server(
            ReviewServicer(
                sessions=self._c.sessions,
                consensus=parse_consensus(self._c.settings.review.get("consensus", {})),
            ),
            self._server,
        )
        audit_pb2_grpc.add_AuditServiceServicer_to_server(
            AuditServicer(sessions=self._c.sessions), self._server
        )
        webhooks_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookServicer(sessions=self._c.sessions), self._server
        )
        qa_pb2_grpc.add_QaServiceServicer_to_server(QaServicer(sessions=self._c.sessions), self._server)
        policy_pb2_grpc.add_PolicyServiceServicer_to_server(
            PolicyServicer(sessions=self._c.sessions), self._server
        )
        wordlist_pb2_grpc.add_WordListServiceServicer_to_server(
            WordListServicer(sessions=self._c.sessions), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        try:
            credentials = server_credentials(self._c.settings)
            if credentials is None:
                self.port = self._server.add_insecure_port(self._address)
            else:
                self.port = self._server.add_secure_port(self._address, credentials)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {self._address}: {exc}") from exc
        await self._server.start()
        for service in ("", *SERVICES):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        host = self._address.rpartition(":")[0]
        scheme = "TLS" if self._c.settings.tls_cert_file else "plaintext"
        log.info("gRPC server listening on %s:%d (%s)", host, self.port, scheme)
        if self._web_address is not None:
            await self._start_web(self._web_address)
        if self._c.settings.prompt_runs:
            worker = PromptRunWorker(
                self._c.sessions, self.pipeline, lease_s=self._c.settings.prompt_run_lease_s
            )
            interval = self._c.settings.prompt_run_poll_interval_s
            self._prompt_runs = asyncio.create_task(worker.run(interval_s=interval))
        return self.port

    def _api_routes(self) -> list[BaseRoute]:
        """The HTTP front doors beside the web queue: the card's `POST /score` and the OpenAI API."""
        settings = self._c.settings
        try:
            chat = ChatTemplate(
                source=settings.chat_template or DEFAULT_CHAT_TEMPLATE,
                stop=(settings.chat_stop,) if settings.chat_stop else (),
            )
        except ChatTemplateError as exc:
            raise StartupError(str(exc)) from None
        openai = OpenAIEndpoints(
            self.pipeline,
            self._authenticate,
            self.results,
            served_model=self.pipeline.served_model,
            chat_template=chat,
        )
        score = ScoreEndpoint(self.pipeline, self._authenticate).handle
        return [Route("/score", score, methods=["POST"], max_body_size=OWN_BODY_LIMIT), *openai.routes()]

    async def _start_web(self, address: str) -> None:
        # Policies can change at runtime; scorers and the identity terms cannot (they come from the file).
        identity = self.live.current.identity_check
        app = create_app(
            sessions=self._c.sessions,
            settings=self._c.settings,
            policies=LivePolicies(self.live),
            # The admins' Replay button: regenerates through this server's own batcher and moderator.
            replay=functools.partial(
                replay,
                sessions=self._c.sessions,
                generator=self._c.generator,
                batcher=self.batcher,
                moderator=self.live,
                moderation_worker=self._mod_worker,
            ),
            identity_terms=identity.terms if identity is not None else None,
            api_routes=self._api_routes(),
            anchors=self._c.anchors,
        )
        tls = self._c.settings
        self.web = WebServer(
            app,
            address,
            grace_s=self._c.settings.grace_period_s,
            tls_cert_file=tls.tls_cert_file,
            tls_key_file=tls.tls_key_file,
        )
        try:
            await self.web.start()
        except WebStartupError as exc:
            self.web = None
            await self.stop(0)
            raise StartupError(str(exc)) from None

    async def stop(self, grace: float | None = None) -> None:
        """Turns health NOT_SERVING (an open Health.Watch is told), then drains the gRPC and web servers
        at once: each stops accepting (new calls and connections are refused: UNAVAILABLE, connection
        refused) and lets calls in flight finish within `grace` seconds, then stops."""
        grace = self._c.settings.grace_period_s if grace is None else grace
        log.info("shutting down: refusing new calls, %.0fs grace for calls in flight", grace)
        await self._health.enter_graceful_shutdown()
        if self._prompt_runs is not None:
            # A run in flight is abandoned: its row falls due again when the claim's lease ends.
            self._prompt_runs.cancel()
            await asyncio.gather(self._prompt_runs, return_exceptions=True)
            self._prompt_runs = None
        # Concurrently: draining one first would leave the other accepting new calls meanwhile, and
        # a long /v1 stream would hold gRPC open to new calls for its whole length.
        await asyncio.gather(
            self._server.stop(grace), *([self.web.stop(grace)] if self.web is not None else [])
        )
        self.batcher.shutdown()
        self._mod_worker.shutdown()
        if self._mod_helpers is not None:
            self._mod_helpers.shutdown()
        log.info("server stopped")

    async def wait(self) -> None:
        await self._server.wait_for_termination()


def refuse_unknown_policies(table: str, configured: Iterable[str], moderator: Moderator) -> None:
    """A `[TABLE.POLICY]` for a policy this gateway does not have would silently never apply (no
    deadline, no second reviewer, no QA sample): refused at start, naming the policies there are."""
    unknown = sorted(set(configured) - set(moderator.policy_names))
    if unknown:
        raise StartupError(
            f"{table} names policies this gateway does not have: {', '.join(unknown)} "
            f"(policies: {', '.join(sorted(moderator.policy_names))})"
        )


def review_deadlines(settings: Settings, moderator: Moderator) -> dict[str, Deadline]:
    """The configured review deadlines; one for a policy this gateway does not have is a mistake that
    would silently never apply: refused at start."""
    deadlines = parse_deadlines(settings.review.get("deadlines", {}))
    refuse_unknown_policies("review.deadlines", deadlines, moderator)
    for policy, deadline in deadlines.items():
        log.info(
            "review deadline for %s: %s after %gs",
            policy,
            deadline.action.value,
            deadline.after.total_seconds(),
        )
    return deadlines


def review_consensus(settings: Settings, moderator: Moderator) -> None:
    """Checks and logs the `[review.consensus]` tables (the servicer and the web app parse their own copy):
    one for a policy this gateway does not have would silently never apply, so it is refused at start."""
    consensus = parse_consensus(settings.review.get("consensus", {}))
    refuse_unknown_policies("review.consensus", consensus, moderator)
    for policy, wanted in consensus.items():
        log.info("review consensus for %s: %d verdicts, %s", policy, wanted.verdicts, wanted.rule.value)


def qa_sample_rates(settings: Settings, moderator: Moderator) -> dict[str, float]:
    """The configured QA sampling rates; one for a policy this gateway does not have is refused at
    start (it would silently sample nothing)."""
    rates = parse_qa(settings.review.get("qa", {}))
    refuse_unknown_policies("review.qa", rates, moderator)
    for policy, rate in rates.items():
        log.info("QA sample of %s: %g of released outputs", policy, rate)
    return rates


async def serve(settings: Settings, *, migrate_schema: bool = False) -> None:
    """Runs until SIGTERM or SIGINT, then shuts down gracefully."""
    check_shared_session_secret(settings)
    torch_threads = confine_main_thread()  # before anything loads (gateway/generation/threads.py)
    components = build_components(settings, migrate_schema=migrate_schema)
    components.torch_threads = torch_threads
    deadlines = review_deadlines(settings, components.moderator)
    review_consensus(settings, components.moderator)
    server = GatewayServer(components, web_address=settings.web_address if settings.web_enabled else None)
    await server.start()
    if settings.metrics_address:
        try:
            serve_metrics(settings.metrics_address, components.sessions)
        except OSError as exc:
            await server.stop(0)
            raise StartupError(f"cannot serve metrics on {settings.metrics_address}: {exc}") from exc
    housekeeping = asyncio.create_task(
        run_periodically(
            components.sessions,
            stale_after=timedelta(seconds=settings.stale_request_s),
            interval_s=settings.maintenance_interval_s,
            deadlines=deadlines,
        )
    )
    webhooks = webhook_worker(settings, components.sessions) if settings.webhook_delivery else None
    delivering = (
        asyncio.create_task(webhooks.run(interval_s=settings.webhook_poll_interval_s))
        if webhooks is not None
        else None
    )
    watching = (
        asyncio.create_task(
            PolicyWatcher(components.live, components.sessions).run(interval_s=settings.policy_refresh_s)
        )
        if components.live is not None
        else None
    )
    anchors = components.anchors
    anchoring = (
        asyncio.create_task(
            run_anchoring(anchors, components.sessions, interval_s=settings.audit_anchor_interval_s)
        )
        if anchors is not None
        else None
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    housekeeping.cancel()
    if watching is not None:
        watching.cancel()
    if anchoring is not None:
        anchoring.cancel()
    if delivering is not None and webhooks is not None:
        # Sends in flight are abandoned: their rows fall due again when the claim's lease ends.
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        await webhooks.aclose()
    await server.stop()
    if anchors is not None:  # the last events of this run are anchored too
        await asyncio.to_thread(anchor_once, anchors, components.sessions)
    components.engine.dispose()
