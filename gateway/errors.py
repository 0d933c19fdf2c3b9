"""Domain errors, each carrying the status it maps to at the edges (gRPC and HTTP).

Their messages are written for the client and never carry generated text. The gRPC edge
(`gateway/rpc/interceptors.py`) and the web edge translate by `grpc_status` / `http_status`, so the
subsystems that raise them never import grpc or a web framework.
"""

from __future__ import annotations


class GatewayError(Exception):
    """An expected refusal, not a bug: never mapped to INTERNAL / 500."""

    grpc_status: str = "FAILED_PRECONDITION"
    http_status: int = 409


class InvalidArgument(GatewayError, ValueError):
    """A request field is out of range or malformed. `field`, when given, names it as the client spelled
    it, and the message starts with it."""

    grpc_status = "INVALID_ARGUMENT"
    http_status = 400

    def __init__(self, field_or_message: str, message: str | None = None) -> None:
        if message is None:
            super().__init__(field_or_message)
            self.field: str | None = None
        else:
            super().__init__(f"{field_or_message}: {message}")
            self.field = field_or_message


class NotFound(GatewayError, LookupError):
    """No such item, ticket, key or reviewer (or not visible to this caller)."""

    grpc_status = "NOT_FOUND"
    http_status = 404


class AlreadyExists(GatewayError):
    grpc_status = "ALREADY_EXISTS"
    http_status = 409


class Unauthenticated(GatewayError):
    """No valid API key (HTTP edge; the gRPC edge answers in its auth interceptor)."""

    grpc_status = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(GatewayError):
    """The caller may not do this (disabled reviewer, escalated item for a non-admin)."""

    grpc_status = "PERMISSION_DENIED"
    http_status = 403


class FailedPrecondition(GatewayError):
    """The request is well-formed but the system is not in a state to do it (e.g. a key's policy is not
    configured on this gateway)."""


class ResourceExhausted(GatewayError):
    """The server is at capacity; the client should retry later."""

    grpc_status = "RESOURCE_EXHAUSTED"
    http_status = 429


class Unavailable(GatewayError):
    """A dependency (database, model worker) is not reachable right now."""

    grpc_status = "UNAVAILABLE"
    http_status = 503


class Cancelled(GatewayError):
    """The client went away or its deadline passed; the work was stopped."""

    grpc_status = "CANCELLED"
    http_status = 499
