"""The server's anchors: where they are kept, how a new one is made, and the periodic loop.

Each anchor the server makes is kept in three places, none of them the database it protects: the
running process's memory (what the web page's verify uses), the log (``audit anchor ID:HASH:MAC`` at
INFO, for a log pipeline that keeps it), and, when ``audit_anchor_file`` is set, one line appended to
that file, so that a restarted process (or another replica sharing the file) starts from the newest
anchor instead of from nothing. Lines are trusted only if their MAC checks, so the file needs no
secrecy; it needs to live where a database intruder cannot delete it (another volume or host).

A new anchor is made only after :func:`gateway.audit.chain.verify_from` has checked that the chain still
extends the previous anchor (or, for the first one, after a whole walk): the server never signs a chain
that was rewritten or truncated since it last looked, and says so, loudly, at every interval instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.anchor import Anchor, AnchorError, authenticate, current_head, parse, sign
from gateway.audit.chain import VerifyResult, verify, verify_from
from gateway.config import Settings, SettingsError
from gateway.storage.tx import run_in_transaction

log = logging.getLogger(__name__)


class ChainBroken(RuntimeError):
    """The chain no longer extends the last anchor (or fails a whole walk): no anchor is made."""

    def __init__(self, result: VerifyResult, last: Anchor | None) -> None:
        self.result = result
        since = f"since anchor {last.head_id}" if last is not None else "in a whole walk"
        super().__init__(f"audit chain broken {since}, at row {result.first_bad_id}: {result.problem}")


def anchor_key(settings: Settings) -> bytes | None:
    """The HMAC key from ``audit_anchor_key`` or the file ``audit_anchor_key_file`` (trailing newline
    dropped), or None when neither is set."""
    if settings.audit_anchor_key is not None:
        return settings.audit_anchor_key.encode()
    if settings.audit_anchor_key_file is None:
        return None
    try:
        text = Path(settings.audit_anchor_key_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"audit_anchor_key_file: cannot read {settings.audit_anchor_key_file!r}: {exc}"
        ) from None
    if len(text) < 32:
        raise SettingsError("audit_anchor_key_file: the key in it must be at least 32 characters")
    return text.encode()


class AnchorKeeper:
    """Makes anchors with one key and remembers the newest (in memory and in the anchor file)."""

    def __init__(self, key: bytes, path: Path | None = None) -> None:
        self._key = key
        self._path = path
        self._last: Anchor | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> bytes:
        return self._key

    def _newest_in_file(self) -> Anchor | None:
        """The authentic anchor with the highest id in the file; forged or damaged lines are logged and
        ignored (an intruder can delete lines, not add ones that count)."""
        if self._path is None or not self._path.exists():
            return None
        newest: Anchor | None = None
        rejected = 0
        with self._path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    anchor = parse(line.split()[-1])
                    authenticate(anchor, self._key)
                except AnchorError:
                    rejected += 1
                    continue
                if newest is None or anchor.head_id > newest.head_id:
                    newest = anchor
        if rejected:
            log.warning(
                "audit anchor file %s: %d line(s) are not authentic anchors, ignored", self._path, rejected
            )
        return newest

    def latest(self) -> Anchor | None:
        """The newest anchor this process made or the anchor file holds (another replica may have added
        one). Reads the file: call it off the event loop."""
        from_file = self._newest_in_file()
        with self._lock:
            if from_file is not None and (self._last is None or from_file.head_id > self._last.head_id):
                self._last = from_file
            return self._last

    def _keep(self, anchor: Anchor) -> None:
        if self._path is not None:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            with self._path.open("a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {anchor}\n")
                fh.flush()
                os.fsync(fh.fileno())
        with self._lock:
            self._last = anchor
        log.info("audit anchor %s", anchor)

    def record(self, session: Session) -> Anchor | None:
        """Verifies what was appended since the last anchor and anchors the head; returns the newest
        anchor (unchanged when nothing was appended), or None for an empty log. Raises
        :class:`ChainBroken` when the chain does not extend the last anchor."""
        last = self.latest()
        head = current_head(session)
        if head is None and last is None:
            return None
        if last is not None and head == last.head:
            return last
        result = (
            verify_from(session=session, anchor=last.head) if last is not None else verify(session=session)
        )
        if not result.ok or result.head_id is None or result.head_hash is None:
            raise ChainBroken(result, last)
        anchor = sign(self._key, result.head_id, result.head_hash)
        self._keep(anchor)
        return anchor


def anchor_keeper(settings: Settings) -> AnchorKeeper | None:
    """The keeper the settings ask for, or None (announced) when no key is configured. Raises
    SettingsError when the key or the anchor file cannot be used."""
    key = anchor_key(settings)
    if key is None:
        log.warning(
            "audit anchoring is off (no audit_anchor_key): `modgate audit verify` and the audit page "
            "cannot tell a truncated or rewritten log from an intact one"
        )
        return None
    path = Path(settings.audit_anchor_file) if settings.audit_anchor_file else None
    if path is not None:
        try:
            path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise SettingsError(
                f"audit_anchor_file: cannot append to {str(path)!r}: {exc.strerror or exc}"
            ) from None
    keeper = AnchorKeeper(key, path)
    newest = keeper.latest()
    log.info("audit anchors: newest known %s", newest if newest is not None else "none yet")
    return keeper


def anchor_once(keeper: AnchorKeeper, sessions: sessionmaker[Session]) -> Anchor | None:
    """One anchoring pass; a broken chain or a failing database is logged, never raised."""
    try:
        return run_in_transaction(sessions, keeper.record)
    except ChainBroken as exc:
        log.error("%s; no new anchor recorded (last good: %s)", exc, keeper.latest())
    except Exception:
        log.exception("audit anchoring failed; retrying at the next interval")
    return None


async def run_periodically(
    keeper: AnchorKeeper, sessions: sessionmaker[Session], *, interval_s: float
) -> None:
    """Until cancelled: anchor now, then every ``interval_s`` seconds."""
    while True:
        await asyncio.to_thread(anchor_once, keeper, sessions)
        await asyncio.sleep(interval_s)
