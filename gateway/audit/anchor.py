"""Anchors: the chain's head (id and hash) with an HMAC-SHA256 over them, kept outside the database.

A hash chain shows an edit in the middle, but not the loss of its newest rows or a rewrite of everything
from some row on with recomputed hashes: only a head recorded elsewhere shows those. The MAC is keyed
with a secret the database does not hold, so someone who can rewrite the database (and an anchor file
or a log line) cannot also make an anchor for the rewritten chain that a verifier accepts.

Text form, as printed, logged and passed to ``--expect-head``: ``ID:HASH:MAC`` (hex). The older
``ID:HASH`` form (what ``modgate audit verify`` printed before anchors had MACs) still parses, with
``mac=None``: it is checked against the chain, but nothing vouches for where it came from.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.storage.models import AuditEvent

MIN_KEY_BYTES = 32
_DOMAIN = b"modgate audit anchor v1\x00"  # no MAC made with this key for another purpose can pass
_FORM = re.compile(r"^([0-9]{1,18}):([0-9a-f]{64})(?::([0-9a-f]{64}))?$")


class AnchorError(ValueError):
    """An anchor that is malformed, or whose MAC does not match; the message says which."""


@dataclass(frozen=True, slots=True)
class Anchor:
    head_id: int
    head_hash: str
    mac: str | None = None

    def __str__(self) -> str:
        base = f"{self.head_id}:{self.head_hash}"
        return base if self.mac is None else f"{base}:{self.mac}"

    @property
    def head(self) -> tuple[int, str]:
        return self.head_id, self.head_hash


def _mac(key: bytes, head_id: int, head_hash: str) -> str:
    return hmac.new(key, _DOMAIN + f"{head_id}:{head_hash}".encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, head_id: int, head_hash: str) -> Anchor:
    if len(key) < MIN_KEY_BYTES:
        raise AnchorError(f"the anchor key must be at least {MIN_KEY_BYTES} bytes")
    return Anchor(head_id, head_hash, _mac(key, head_id, head_hash))


def parse(text: str) -> Anchor:
    found = _FORM.fullmatch(text.strip())
    if found is None or int(found.group(1)) < 1:
        raise AnchorError(
            "expected ID:HASH:MAC as printed by `modgate audit anchor` (or the older ID:HASH), "
            "with a positive id and 64 lowercase hex digits for each of HASH and MAC"
        )
    return Anchor(int(found.group(1)), found.group(2), found.group(3))


def authenticate(anchor: Anchor, key: bytes) -> None:
    """Raises :class:`AnchorError` unless ``anchor`` carries a MAC made with ``key``."""
    if anchor.mac is None:
        raise AnchorError("the anchor has no MAC: nothing vouches for it")
    if not hmac.compare_digest(anchor.mac, _mac(key, anchor.head_id, anchor.head_hash)):
        raise AnchorError("the anchor's MAC does not match: forged, altered, or made with another key")


def current_head(session: Session) -> tuple[int, str] | None:
    """The newest row's (id, hash), or None for an empty log. Unverified: verify before signing."""
    row = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    return (row.id, row.hash) if row is not None else None
