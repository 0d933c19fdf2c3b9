"""Domain errors. The gRPC layer maps each to a precise status code (see `gateway/interceptors.py`);
their messages are written for the client and never carry generated text."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of the errors whose message is safe to show a client."""


class InvalidArgument(GatewayError):
    """A request field is out of range or malformed. `field` names it, as the client spelled it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ResourceExhausted(GatewayError):
    """The server is at capacity; the client should retry later."""


class Unavailable(GatewayError):
    """A dependency (database, model worker) is not reachable right now."""


class Cancelled(GatewayError):
    """The client went away or its deadline passed; the work was stopped."""
