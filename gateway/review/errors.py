"""Review-queue errors, mapped to status codes by the gRPC and web layers.

Suggested mapping (also on each class as ``grpc_status`` / ``http_status``):

===============  ===================  ====
NotFound         NOT_FOUND            404
Forbidden        PERMISSION_DENIED    403
InvalidDecision  INVALID_ARGUMENT     400
NotClaimant      FAILED_PRECONDITION  409
LeaseExpired     FAILED_PRECONDITION  409
AlreadyDecided   FAILED_PRECONDITION  409
StaleVersion     ABORTED              409
AlreadyExists    ALREADY_EXISTS       409
===============  ===================  ====

ABORTED for a stale version follows the gRPC convention for optimistic-concurrency conflicts: the
client should reload the item and retry, unlike the FAILED_PRECONDITION cases.
"""

from __future__ import annotations

from gateway.errors import AlreadyExists, Forbidden, InvalidArgument, NotFound
from gateway.errors import GatewayError as DomainError


class ReviewError(DomainError):
    """Base class of the refusals specific to the review queue."""


class NotClaimant(ReviewError):
    """The item is not claimed by this reviewer (never claimed, or claimed by someone else)."""


class LeaseExpired(ReviewError):
    """This reviewer's claim ran out; the item may be claimed again by anyone."""


class StaleVersion(ReviewError):
    """The item changed since the reviewer loaded it (``expected_version`` is old)."""

    grpc_status = "ABORTED"


class AlreadyDecided(ReviewError):
    """The item was already approved, edited or rejected; decisions are final."""


class InvalidDecision(InvalidArgument):
    """Unknown decision, an edit without text, or text with a decision that takes none."""


__all__ = [
    "AlreadyDecided",
    "AlreadyExists",
    "DomainError",
    "Forbidden",
    "InvalidArgument",
    "InvalidDecision",
    "LeaseExpired",
    "NotClaimant",
    "NotFound",
    "ReviewError",
    "StaleVersion",
]
