"""Tenants' webhook endpoints: register (the secret is returned once), list, remove.

The URL must be http(s) with a host and no user:password part (credentials would be stored and logged
in clear; the signature is what authenticates the gateway to the receiver). A tenant has at most
`MAX_ENDPOINTS_PER_TENANT` endpoints, so that one tenant cannot make every event cost many deliveries.
Every change is audited (ids and URLs only, never the secret).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.audit import append as audit_append
from gateway.audit import events as audit_events
from gateway.errors import InvalidArgument, NotFound
from gateway.storage.models import WebhookEndpoint
from gateway.webhooks.events import EVENT_TYPES

SECRET_PREFIX = "whsec_"
MAX_URL_CHARS = 2048
MAX_ENDPOINTS_PER_TENANT = 16
_TENANT = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")


def check_url(url: str) -> str:
    """The URL if a webhook may be sent there, else InvalidArgument saying why."""
    if not url or len(url) > MAX_URL_CHARS:
        raise InvalidArgument("url", f"must be 1-{MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidArgument("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidArgument("url", f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument("url", "must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("url", "must not carry a user name or password")
    if port == 0:
        raise InvalidArgument("url", "port 0 is not a port")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    """The subscribed event types, deduplicated and sorted, else InvalidArgument."""
    chosen = sorted(set(events))
    if not chosen:
        raise InvalidArgument("events", f"subscribe to at least one of {', '.join(EVENT_TYPES)}")
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise InvalidArgument(
            "events", f"unknown event type(s) {unknown}: choose from {', '.join(EVENT_TYPES)}"
        )
    return chosen


def create_endpoint(
    *, session: Session, tenant: str, url: str, events: Iterable[str], actor: str
) -> tuple[WebhookEndpoint, str]:
    """Registers an endpoint for `tenant`; returns it and its signing secret (shown to the caller once)."""
    if not _TENANT.fullmatch(tenant):
        raise InvalidArgument("tenant", "must be 1-128 printable characters")
    url = check_url(url)
    chosen = check_events(events)
    count = session.scalar(select(func.count()).where(WebhookEndpoint.tenant == tenant)) or 0
    if count >= MAX_ENDPOINTS_PER_TENANT:
        raise InvalidArgument(
            "url",
            f"tenant {tenant!r} already has {count} webhook endpoints (at most {MAX_ENDPOINTS_PER_TENANT})",
        )
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(tenant=tenant, url=url, events=chosen, secret=secret)
    session.add(endpoint)
    session.flush()
    audit_append(
        session=session,
        event_type=audit_events.WEBHOOK_CREATED,
        actor=actor,
        tenant=tenant,
        action="create",
        payload={"endpoint_id": endpoint.id, "url": url, "events": chosen},
    )
    return endpoint, secret


def list_endpoints(*, session: Session, tenant: str | None = None) -> list[WebhookEndpoint]:
    """Endpoints, oldest first (`tenant`: only that tenant's)."""
    stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if tenant is not None:
        stmt = stmt.where(WebhookEndpoint.tenant == tenant)
    return list(session.scalars(stmt))


def remove_endpoint(
    *, session: Session, endpoint_id: str, actor: str, tenant: str | None = None
) -> WebhookEndpoint:
    """Deletes an endpoint and its undelivered events (`tenant`: only if it is that tenant's; another
    tenant's endpoint is NotFound, as if it did not exist)."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (tenant is not None and endpoint.tenant != tenant):
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    audit_append(
        session=session,
        event_type=audit_events.WEBHOOK_REMOVED,
        actor=actor,
        tenant=endpoint.tenant,
        action="remove",
        payload={"endpoint_id": endpoint.id, "url": endpoint.url},
    )
    session.delete(endpoint)
    session.flush()
    return endpoint
