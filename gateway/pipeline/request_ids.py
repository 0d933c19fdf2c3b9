"""The request id: taken from the client when well-formed, else made here; carried in a context variable
so that logs, records and audit events of one call share it, whichever front door it came through."""

from __future__ import annotations

import contextvars
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_request_id(given: str | None) -> str:
    """The client's id when it matches `[A-Za-z0-9._:-]{1,64}` (safe in logs and headers), else a new one."""
    return given if given and _VALID.match(given) else uuid.uuid4().hex
