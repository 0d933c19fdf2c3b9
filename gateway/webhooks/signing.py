"""The signature a receiver checks: HMAC-SHA256 over ``"<unix time>." + body`` with the endpoint's secret.

Sent as ``Modgate-Signature: t=<unix time>,v1=<hex digest>``. The time is inside the signed message, so a
receiver that refuses old timestamps also refuses a replayed request. The verification snippet for
receivers is in docs/operations.md, and the tests run that very snippet.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Modgate-Signature"
EVENT_ID_HEADER = "Modgate-Event-Id"
EVENT_TYPE_HEADER = "Modgate-Event-Type"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
