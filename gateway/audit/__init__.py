"""The audit log: append-only, hash-chained events; verification; filtered queries.

Usage, inside the caller's transaction (data functions never commit)::

    with Session() as s, s.begin():
        audit.append(session=s, event_type=audit.events.REQUEST_RECEIVED, actor="key:ab12cd34", ...)
"""

from gateway.audit import events
from gateway.audit.chain import (
    GENESIS_HASH,
    VerifyResult,
    append,
    canonical_json,
    compute_hash,
    verify,
    verify_from,
)
from gateway.audit.query import DEFAULT_LIMIT, MAX_LIMIT, query

__all__ = [
    "DEFAULT_LIMIT",
    "GENESIS_HASH",
    "MAX_LIMIT",
    "VerifyResult",
    "append",
    "canonical_json",
    "compute_hash",
    "events",
    "query",
    "verify",
    "verify_from",
]
