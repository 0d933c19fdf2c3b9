"""Prometheus metrics: what an operator watches. Served by `modgate serve` on `metrics_address`.

Metric names start with `modgate_`. Labels are bounded sets (method, status code, policy, action,
category, worker): never tenants, keys or request ids, which would make the series unbounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.storage.base import utcnow
from gateway.storage.models import ReviewItem, ReviewState
from moderation.types import Decision

T = TypeVar("T")

log = logging.getLogger(__name__)


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


GRPC_REQUESTS = Counter(
    "modgate_grpc_requests_total", "gRPC calls by method and status code.", ["method", "code"]
)


GRPC_SECONDS = Histogram("modgate_grpc_seconds", "gRPC call latency.", ["method"], buckets=LATENCY_BUCKETS)


REVIEW_DEADLINES = Counter(
    "modgate_review_deadlines_total",
    "Held outputs whose review deadline passed, by policy and the action applied.",
    ["policy", "action"],
)


OUTPUTS = Counter("modgate_outputs_total", "Moderated outputs by policy and action.", ["policy", "action"])


REASONS = Counter(
    "modgate_moderation_reasons_total",
    "Rules that fired, by policy, category and action.",
    ["policy", "category", "action"],
)


WORK_SECONDS = Histogram(
    "modgate_work_seconds",
    "Time in a worker (queue wait + run), by worker.",
    ["worker"],
    buckets=LATENCY_BUCKETS,
)


PROMPT_SCREENING = Counter(
    "modgate_prompt_screening_total",
    "Prompts screened before generation (policies with prompt_screening only), by policy and action: "
    "release (generated as usual), hold or block.",
    ["policy", "action"],
)


GENERATED_TOKENS = Counter("modgate_generated_tokens_total", "Tokens generated.")


BATCH_SIZE = Histogram("modgate_batch_size", "Rows per generation batch.", buckets=(1, 2, 4, 8, 16, 32, 64))


WEBHOOK_SENDS = Counter(
    "modgate_webhook_sends_total",
    "Webhook POSTs by outcome: delivered, retry (to be tried again) or dead (given up).",
    ["outcome"],
)


def observe_decisions(decisions: Sequence[Decision], generated_tokens: int) -> None:
    for d in decisions:
        action = d.action.name.lower()
        OUTPUTS.labels(d.policy_name, action).inc()
        for r in d.reasons:
            REASONS.labels(d.policy_name, r.category, r.action.name.lower()).inc()
    GENERATED_TOKENS.inc(generated_tokens)


class _DatabaseCollector(Collector, Generic[T]):
    """Gauges read from the database at scrape time (so that every replica reports the shared state),
    at most every `min_interval_s`; a database that cannot be read leaves a gap, never a failed scrape."""

    what = ""  # for the warning: "could not read <what>"

    def __init__(self, sessions: sessionmaker[Session], *, min_interval_s: float = 5.0) -> None:
        self._sessions = sessions
        self._min_interval = min_interval_s
        self._cached: tuple[float, T] | None = None

    def _query(self, session: Session) -> T:
        raise NotImplementedError

    def _families(self, data: T) -> Iterator[GaugeMetricFamily]:
        raise NotImplementedError

    def _read(self) -> T:
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self._min_interval:
            return self._cached[1]
        with self._sessions() as s:
            data = self._query(s)
        self._cached = (now, data)
        return data

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            data = self._read()
        except Exception:
            log.warning("metrics: could not read %s", self.what, exc_info=True)
            return
        yield from self._families(data)


class ReviewQueueCollector(_DatabaseCollector[tuple[dict[str, int], float]]):
    """Queue depth by state and the age of the oldest pending item."""

    what = "the review queue"

    def _query(self, session: Session) -> tuple[dict[str, int], float]:
        counts = {
            str(state.value): n
            for state, n in session.execute(select(ReviewItem.state, func.count()).group_by(ReviewItem.state))
        }
        oldest = session.scalar(
            select(func.min(ReviewItem.created_at)).where(ReviewItem.state == ReviewState.PENDING)
        )
        return counts, (utcnow() - oldest).total_seconds() if oldest is not None else 0.0

    def _families(self, data: tuple[dict[str, int], float]) -> Iterator[GaugeMetricFamily]:
        counts, age = data
        depth = GaugeMetricFamily("modgate_review_queue_items", "Review items by state.", labels=["state"])
        for state in ReviewState:
            depth.add_metric([state.value], counts.get(state.value, 0))
        yield depth
        yield GaugeMetricFamily(
            "modgate_review_oldest_pending_seconds", "Age of the oldest pending review item.", value=age
        )


class QaSampleCollector(_DatabaseCollector[dict[str, int]]):
    """QA samples of released outputs by state (pending: the labelling backlog; harmful, fine)."""

    what = "the QA samples"

    def _query(self, session: Session) -> dict[str, int]:
        from gateway.review.qa import state_counts

        return state_counts(session=session)

    def _families(self, data: dict[str, int]) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modgate_qa_samples", "QA samples of released outputs by state.", labels=["state"]
        )
        for state, n in sorted(data.items()):
            family.add_metric([state], n)
        yield family


def serve_metrics(
    address: str, sessions: sessionmaker[Session], registry: CollectorRegistry = REGISTRY
) -> int:
    """Starts the /metrics HTTP endpoint on HOST:PORT (port 0: any free port); returns the port."""
    registry.register(ReviewQueueCollector(sessions))
    registry.register(QaSampleCollector(sessions))
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host, registry=registry)
    bound = int(server.server_port)
    log.info("Prometheus metrics on http://%s:%d/metrics", host, bound)
    return bound
