"""The data layer's domain errors: the gateway's own (`gateway/errors.py`), under the names the data
layer uses. Each carries the `grpc_status` / `http_status` the edges map it to, so this package never
imports grpc or a web framework. Messages are safe to show to a caller: they name ids and states, never
generated text."""

from __future__ import annotations

from gateway.errors import AlreadyExists, Forbidden, InvalidArgument, NotFound
from gateway.errors import GatewayError as DomainError

__all__ = ["AlreadyExists", "DomainError", "Forbidden", "InvalidArgument", "NotFound"]
