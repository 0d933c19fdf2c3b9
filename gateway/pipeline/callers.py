"""Who is calling: an API key -> `Caller`, the one decision every front door takes.

The key decides who the caller is (its tenant), what it may call (scopes), which moderation policy its
outputs get, and for reviewers which account acts. `resolve_caller` is used by the gRPC edge
(gateway/rpc/auth.py), `POST /score` and the `/v1` API alike, so they cannot differ on who gets in.
Turning auth off takes the explicit `--insecure-no-auth` flag (on a loopback address only); every call
then acts as tenant "default", without the audit scopes.

The key lookup runs through `run_in_transaction`, so a database outage is the same clear UNAVAILABLE an
authenticated call would get, never the driver's message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import Forbidden, Unauthenticated
from gateway.storage.apikeys import SCOPES, authenticate_key
from gateway.storage.tx import run_in_transaction

log = logging.getLogger(__name__)


ALL_SCOPES = frozenset(SCOPES)
AUDIT_ALL = "audit:all"


INSECURE_TENANT = "default"


@dataclass(frozen=True)
class Caller:
    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None
    policy: str | None = None
    reviewer_id: str | None = None
    # The key's own per-minute limits; None: the gateway's default applies.
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def has_scope(self, scope: str) -> bool:
        """`audit:all` includes `audit`: an operator key need not be granted both."""
        return scope in self.scopes or (scope == "audit" and AUDIT_ALL in self.scopes)

    @property
    def audit_tenant(self) -> str | None:
        """The only tenant whose audit events this caller may read; None: every tenant (`audit:all`)."""
        return None if AUDIT_ALL in self.scopes else self.tenant

    @property
    def actor(self) -> str:
        """Who the audit log says acted: the key, or the tenant when auth is off."""
        return f"key:{self.key_id}" if self.key_id else f"tenant:{self.tenant}"

    @property
    def rate_key(self) -> str:
        """What rate limits count against: the key, or the tenant when auth is off."""
        return self.key_id or f"tenant:{self.tenant}"


caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


# Auth off is for trials on loopback: generation and review, but no reading of the audit log.
INSECURE_CALLER = Caller(tenant=INSECURE_TENANT, scopes=frozenset({"generate", "review"}))


def current_caller() -> Caller:
    """The authenticated caller of the current call (set by AuthInterceptor before the servicer runs)."""
    caller = caller_var.get()
    if caller is None:  # a servicer reached without the interceptor: a wiring bug, never a client error
        raise RuntimeError("no authenticated caller in this context")
    return caller


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class KeyAuthenticator:
    """Looks a secret up in the database (off the event loop) and returns the Caller, or None."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def _lookup(self, secret: str) -> Caller | None:
        return run_in_transaction(self._sessions, lambda session: self._caller(session, secret))

    @staticmethod
    def _caller(session: Session, secret: str) -> Caller | None:
        key = authenticate_key(session=session, secret=secret)
        if key is None:
            return None
        return Caller(
            tenant=key.tenant,
            scopes=frozenset(key.scopes),
            key_id=key.id,
            policy=key.policy,
            reviewer_id=key.reviewer_id,
            requests_per_minute=key.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute,
        )

    async def __call__(self, secret: str) -> Caller | None:
        return await asyncio.to_thread(self._lookup, secret)


Authenticate = Callable[[str], Awaitable[Caller | None]]


HTTP_KEY_HINT = "send 'Authorization: Bearer <key>'"


async def resolve_caller(
    authenticate: Authenticate | None, secret: str | None, scope: str, *, send: str
) -> Caller:
    """The caller a key stands for, for a call needing `scope`; `authenticate` None: auth is off. Every
    front door (gRPC, `/score`, `/v1`) decides here, so they cannot differ on who gets in. `send`: how
    the client should pass its key (the message of a missing key)."""
    if authenticate is None:
        caller: Caller | None = INSECURE_CALLER
    else:
        if secret is None:
            raise Unauthenticated(f"missing API key: {send}")
        caller = await authenticate(secret)
    if caller is None:
        raise Unauthenticated("invalid or revoked API key")
    if not caller.has_scope(scope):
        raise Forbidden(f"this API key lacks the {scope!r} scope")
    return caller
