"""The shared rate limiter: token buckets in the database, so that every gateway replica on the same
database enforces one limit per key (the in-process `gateway.pipeline.ratelimit.RateLimiter` gives
each replica its own).

One admission is one short transaction: create the key's bucket rows if missing (INSERT ... ON CONFLICT
DO NOTHING, so two replicas meeting a new key do not collide), lock them (SELECT ... FOR UPDATE on
PostgreSQL; on SQLite every transaction already holds the write lock from BEGIN IMMEDIATE), refill, and
either take what is wanted or raise RateLimited, which rolls back and leaves the buckets untouched. The
rule itself (`wants`, `refilled`, `check`) is the in-process limiter's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from gateway.pipeline.ratelimit import TOKENS, Limits, Want, check, refilled, wants
from gateway.storage.models import RateBucket
from gateway.storage.tx import run_in_transaction

__all__ = ["DatabaseRateLimiter", "give_back", "take"]


def _locked(session: Session, key: str, wanted: Sequence[tuple[str, int]], now: float) -> list[RateBucket]:
    """The buckets (kind, per_minute) of `key`, created full if missing, locked, in `wanted`'s order."""
    rows = [
        {"key": key, "kind": kind, "per_minute": per, "level": float(per), "stamp": now}
        for kind, per in wanted
    ]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(RateBucket).values(rows).on_conflict_do_nothing())
    kinds = [kind for kind, _ in wanted]
    found = session.scalars(
        select(RateBucket)
        .where(RateBucket.key == key, RateBucket.kind.in_(kinds))
        .order_by(RateBucket.kind)  # one lock order for every replica: no deadlock between two keys' kinds
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    by_kind = {b.kind: b for b in found}
    out = []
    for kind, per in wanted:
        bucket = by_kind[kind]
        if bucket.per_minute != per:  # the key's limit changed: start full, like the in-process limiter
            bucket.per_minute, bucket.level, bucket.stamp = per, float(per), now
        else:
            bucket.level = refilled(bucket.level, bucket.stamp, per, now)
            bucket.stamp = max(bucket.stamp, now)
        out.append(bucket)
    return out


def take(session: Session, key: str, wanted: Sequence[Want], now: float) -> None:
    """Takes every `wanted` amount from `key`'s buckets, or raises RateLimited (roll the transaction
    back: nothing is taken)."""
    buckets = _locked(session, key, [(w.kind, w.per_minute) for w in wanted], now)
    check(list(wanted), [b.level for b in buckets])
    for bucket, w in zip(buckets, wanted, strict=True):
        bucket.level -= w.amount


def give_back(session: Session, key: str, kind: str, per_minute: int, amount: float, now: float) -> None:
    """Returns `amount` to a bucket (never above its size)."""
    (bucket,) = _locked(session, key, [(kind, per_minute)], now)
    bucket.level = min(float(per_minute), bucket.level + amount)


class DatabaseRateLimiter:
    """`gateway.pipeline.ratelimit.Limiter` on the database. Stamps are wall-clock seconds (`time.time`),
    shared by the replicas: keep their clocks in sync (NTP); a replica whose clock is behind the stored stamp
    refills nothing until it catches up, it never drains a bucket."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], float] = time.time) -> None:
        self._sessions = sessions
        self._clock = clock

    def admit(self, key: str, limits: Limits, *, tokens: int) -> None:
        wanted = wants(limits, tokens)
        if wanted:
            run_in_transaction(self._sessions, lambda s: take(s, key, wanted, self._clock()))

    def refund(self, key: str, limits: Limits, *, tokens: int) -> None:
        if not limits.tokens_per_minute or tokens <= 0:
            return
        per_minute = limits.tokens_per_minute
        run_in_transaction(
            self._sessions, lambda s: give_back(s, key, TOKENS, per_minute, float(tokens), self._clock())
        )
