"""Domain errors of the data layer, with the status each maps to at the edges.

The gRPC and web layers translate these by their ``grpc_status`` / ``http_status`` attributes (one
handler per edge, DESIGN practice 5), so this package never imports grpc or a web framework. Messages
are safe to show to a caller: they name ids and states, never generated text.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class: an expected refusal, not a bug (the edges never map it to INTERNAL/500)."""

    grpc_status: str = "FAILED_PRECONDITION"
    http_status: int = 409


class NotFound(DomainError, LookupError):
    """No such item, ticket, key or reviewer (or not visible to this tenant)."""

    grpc_status = "NOT_FOUND"
    http_status = 404


class AlreadyExists(DomainError):
    """A unique name (reviewer username, review item for an output) is taken."""

    grpc_status = "ALREADY_EXISTS"
    http_status = 409


class InvalidArgument(DomainError, ValueError):
    """The request itself is malformed (unknown decision, empty edit, weak password...)."""

    grpc_status = "INVALID_ARGUMENT"
    http_status = 400


class Forbidden(DomainError):
    """The actor may not do this (disabled reviewer, escalated item for a non-admin)."""

    grpc_status = "PERMISSION_DENIED"
    http_status = 403
