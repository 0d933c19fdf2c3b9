"""Word lists in the database: create, change entries (a new version each time), attach, detach, read.

Data functions: `session` keyword, never commit (the CLI command or servicer owns the transaction).
Every change appends a `moderation_revisions` row in the same transaction as the change and its audit
event, so replicas pick it up through the same revision check as a policy activation
(gateway/policies/watcher.py). Audit payloads carry names, versions and counts, never the entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.audit import events
from gateway.audit.chain import append
from gateway.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from gateway.fields import has_control
from gateway.policies.store import active_set, latest_revision, new_revision
from gateway.storage.wordlist_models import WordList, WordListAttachment, WordListVersion
from moderation.config import ModerationConfigError
from moderation.wordlist import normalise_entries

__all__ = [
    "MAX_ENTRIES",
    "MAX_ENTRY_CHARS",
    "TARGET_KINDS",
    "Attachment",
    "ListInfo",
    "ServedLists",
    "Snapshot",
    "attach",
    "change_entries",
    "create_list",
    "detach",
    "get_list",
    "history",
    "list_lists",
    "served_lists",
    "snapshots",
]

MAX_NAME_CHARS = 128
MAX_ENTRIES = 10_000  # per list and kind: a list compiles into one regex on every replica
MAX_ENTRY_CHARS = 100
TARGET_KINDS = ("policy", "tenant")


@dataclass(frozen=True)
class Snapshot:
    """One version of one list: what a scorer is extended with."""

    list_id: int
    version: int
    name: str
    tenant: str  # "" for a global list
    words: tuple[str, ...]
    allow: tuple[str, ...]

    @property
    def ref(self) -> tuple[int, int]:
        return (self.list_id, self.version)


@dataclass(frozen=True)
class Attachment:
    target_kind: str
    target: str
    revision: int


@dataclass(frozen=True)
class ListInfo:
    """A list at one version, as plain data (no ORM object outlives its transaction)."""

    snapshot: Snapshot
    latest_version: int
    revision: int  # the revision that made this version
    created_by: str
    created_at: datetime
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class ServedLists:
    """What the lists add at `revision`: per policy name and per tenant, the attached lists' current
    versions (ordered by list id)."""

    revision: int
    by_policy: Mapping[str, tuple[Snapshot, ...]]
    by_tenant: Mapping[str, tuple[Snapshot, ...]]


def _check_name(value: str, what: str) -> str:
    if not value or len(value) > MAX_NAME_CHARS or not value.isprintable() or value != value.strip():
        raise InvalidArgument(
            what, f"must be 1-{MAX_NAME_CHARS} printable characters without surrounding spaces, got {value!r}"
        )
    return value


def _entries(raw: Iterable[str], what: str) -> list[str]:
    """Entries in the shipped lists' syntax (`#` comments, `*` wildcards, phrases), normalised."""
    entries = normalise_entries(raw)
    for entry in entries:
        if len(entry) > MAX_ENTRY_CHARS:
            raise InvalidArgument(what, f"an entry is over {MAX_ENTRY_CHARS} characters")
        if has_control(entry):  # NUL (which PostgreSQL refuses), escapes: never part of a word
            raise InvalidArgument(what, "an entry holds a control character")
    return entries


def _find(session: Session, name: str, tenant: str) -> WordList:
    row = session.scalars(
        select(WordList).where(WordList.name == name, WordList.tenant == tenant)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no word list {_label(name, tenant)}")
    return row


def _label(name: str, tenant: str) -> str:
    return f"{name!r} of tenant {tenant!r}" if tenant else f"{name!r} (global)"


def _latest(session: Session, list_id: int) -> WordListVersion:
    row = session.scalars(
        select(WordListVersion)
        .where(WordListVersion.list_id == list_id)
        .order_by(WordListVersion.version.desc())
        .limit(1)
    ).one()
    return row


def _snapshot(row: WordList, version: WordListVersion) -> Snapshot:
    return Snapshot(
        list_id=row.id,
        version=version.version,
        name=row.name,
        tenant=row.tenant,
        words=tuple(version.words),
        allow=tuple(version.allow),
    )


def create_list(
    *,
    session: Session,
    name: str,
    tenant: str = "",
    words: Sequence[str] = (),
    allow: Sequence[str] = (),
    actor: str,
) -> ListInfo:
    """A new list (global when `tenant` is ""), version 1 holding `words` and `allow`. Not applied to
    anything until attached."""
    _check_name(name, "name")
    if tenant:
        _check_name(tenant, "tenant")
    if session.scalars(select(WordList.id).where(WordList.name == name, WordList.tenant == tenant)).first():
        raise AlreadyExists(f"word list {_label(name, tenant)} already exists")
    block, allowed = _entries(words, "words"), _entries(allow, "allow")
    _check_sizes(block, allowed)
    revision = new_revision(session, kind="wordlist", actor=actor)
    row = WordList(name=name, tenant=tenant, created_by=actor)
    session.add(row)
    session.flush()
    version = WordListVersion(
        list_id=row.id, version=1, revision=revision, words=block, allow=allowed, created_by=actor
    )
    session.add(version)
    session.flush()
    append(
        session=session,
        event_type=events.WORDLIST_CREATED,
        actor=actor,
        tenant=tenant or None,
        action="create",
        payload=_payload(row, version),
    )
    return _info(row, version, version.version)


def _check_sizes(words: Sequence[str], allow: Sequence[str]) -> None:
    for what, entries in (("words", words), ("allow", allow)):
        if len(entries) > MAX_ENTRIES:
            raise InvalidArgument(what, f"a list holds at most {MAX_ENTRIES} entries, got {len(entries)}")


def _payload(row: WordList, version: WordListVersion, **extra: object) -> dict[str, object]:
    return {
        "list_id": row.id,
        "name": row.name,
        "owner": row.tenant or None,
        "version": version.version,
        "revision": version.revision,
        "words": len(version.words),
        "allow": len(version.allow),
        **extra,
    }


def change_entries(
    *,
    session: Session,
    name: str,
    tenant: str = "",
    add_words: Sequence[str] = (),
    remove_words: Sequence[str] = (),
    add_allow: Sequence[str] = (),
    remove_allow: Sequence[str] = (),
    actor: str,
) -> ListInfo:
    """A new version of the list with entries added and removed (removing an entry the list does not
    hold is refused: NOT_FOUND, nothing changed; a change that changes nothing is FAILED_PRECONDITION).
    Served by every replica from the revision it makes, wherever the list is attached."""
    row = _find(session, name, tenant)
    current = _latest(session, row.id)
    words = _apply(
        list(current.words), _entries(add_words, "add_words"), _entries(remove_words, "remove_words")
    )
    allow = _apply(
        list(current.allow), _entries(add_allow, "add_allow"), _entries(remove_allow, "remove_allow")
    )
    if words == list(current.words) and allow == list(current.allow):
        raise FailedPrecondition(f"word list {_label(name, tenant)} already holds exactly these entries")
    _check_sizes(words, allow)
    revision = new_revision(session, kind="wordlist", actor=actor)
    version = WordListVersion(
        list_id=row.id,
        version=current.version + 1,
        revision=revision,
        words=words,
        allow=allow,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    append(
        session=session,
        event_type=events.WORDLIST_CHANGED,
        actor=actor,
        tenant=tenant or None,
        action="change",
        payload=_payload(
            row,
            version,
            added=len(set(words) - set(current.words)) + len(set(allow) - set(current.allow)),
            removed=len(set(current.words) - set(words)) + len(set(current.allow) - set(allow)),
        ),
    )
    return _info(row, version, version.version)


def _apply(entries: list[str], add: list[str], remove: list[str]) -> list[str]:
    missing = [e for e in remove if e not in entries]
    if missing:
        raise NotFound(f"{len(missing)} entr{'y' if len(missing) == 1 else 'ies'} to remove not in the list")
    gone = set(remove)
    kept = [e for e in entries if e not in gone]
    return kept + [e for e in add if e not in kept]


def _attachments(session: Session, at_revision: int | None) -> dict[tuple[int, str, str], int]:
    """(list id, kind, target) -> the revision it was attached at, for what is attached at
    `at_revision` (default: now)."""
    query = select(WordListAttachment)
    if at_revision is not None:
        query = query.where(WordListAttachment.revision <= at_revision)
    last: dict[tuple[int, str, str], tuple[int, bool]] = {}
    for row in session.scalars(query):
        key = (row.list_id, row.target_kind, row.target)
        if key not in last or row.revision > last[key][0]:
            last[key] = (row.revision, row.attached)
    return {key: revision for key, (revision, attached) in last.items() if attached}


def _set_attached(
    session: Session, *, name: str, tenant: str, target_kind: str, target: str, attached: bool, actor: str
) -> int:
    if target_kind not in TARGET_KINDS:
        raise InvalidArgument("target_kind", f"must be one of {', '.join(TARGET_KINDS)}, got {target_kind!r}")
    _check_name(target, "target")
    row = _find(session, name, tenant)
    now = _attachments(session, None)
    is_attached = (row.id, target_kind, target) in now
    if attached:
        if is_attached:
            raise FailedPrecondition(
                f"word list {_label(name, tenant)} is already attached to {target_kind} {target!r}"
            )
        if tenant and (target_kind, target) != ("tenant", tenant):
            raise FailedPrecondition(
                f"word list {_label(name, tenant)} belongs to a tenant: it attaches to tenant {tenant!r} only"
            )
        if target_kind == "policy":
            try:
                known = active_set(session=session).policies()
            except ModerationConfigError as exc:
                raise FailedPrecondition(f"the stored policies do not build: {exc}") from None
            if target not in known:
                raise NotFound(f"no policy {target!r} is served (known: {', '.join(sorted(known))})")
    elif not is_attached:
        raise FailedPrecondition(
            f"word list {_label(name, tenant)} is not attached to {target_kind} {target!r}"
        )
    revision = new_revision(session, kind="wordlist", actor=actor)
    session.add(
        WordListAttachment(
            revision=revision, list_id=row.id, target_kind=target_kind, target=target, attached=attached
        )
    )
    session.flush()
    version = _latest(session, row.id)
    append(
        session=session,
        event_type=events.WORDLIST_ATTACHED if attached else events.WORDLIST_DETACHED,
        actor=actor,
        tenant=tenant or (target if target_kind == "tenant" else None),
        action="attach" if attached else "detach",
        payload={
            "list_id": row.id,
            "name": row.name,
            "owner": row.tenant or None,
            "version": version.version,
            "target_kind": target_kind,
            "target": target,
            "revision": revision,
        },
    )
    return revision


def attach(
    *, session: Session, name: str, tenant: str = "", target_kind: str, target: str, actor: str
) -> int:
    """Applies the list to every decision under policy `target` (a global list only) or of tenant
    `target`, from the revision returned on."""
    return _set_attached(
        session, name=name, tenant=tenant, target_kind=target_kind, target=target, attached=True, actor=actor
    )


def detach(
    *, session: Session, name: str, tenant: str = "", target_kind: str, target: str, actor: str
) -> int:
    return _set_attached(
        session, name=name, tenant=tenant, target_kind=target_kind, target=target, attached=False, actor=actor
    )


def _info(
    row: WordList, version: WordListVersion, latest: int, attachments: Iterable[Attachment] = ()
) -> ListInfo:
    return ListInfo(
        snapshot=_snapshot(row, version),
        latest_version=latest,
        revision=version.revision,
        created_by=version.created_by,
        created_at=version.created_at,
        attachments=tuple(attachments),
    )


def get_list(*, session: Session, name: str, tenant: str = "", version: int | None = None) -> ListInfo:
    """The list at `version` (default: its latest), with where it is attached now."""
    row = _find(session, name, tenant)
    latest = _latest(session, row.id)
    chosen = latest if version is None else session.get(WordListVersion, (row.id, version))
    if chosen is None:
        raise NotFound(f"word list {_label(name, tenant)} has no version {version}")
    return _info(row, chosen, latest.version, _attached_to(row.id, _attachments(session, None)))


def _attached_to(list_id: int, attachments: dict[tuple[int, str, str], int]) -> list[Attachment]:
    return [
        Attachment(kind, target, revision)
        for (attached_id, kind, target), revision in sorted(attachments.items())
        if attached_id == list_id
    ]


def list_lists(*, session: Session, tenant: str | None = None) -> list[ListInfo]:
    """Every list at its latest version (only `tenant`'s own when given; "" for the global ones); the
    attachments are read once for all of them."""
    query = select(WordList).order_by(WordList.tenant, WordList.name)
    if tenant is not None:
        query = query.where(WordList.tenant == tenant)
    attachments = _attachments(session, None)
    infos = []
    for row in session.scalars(query).all():
        latest = _latest(session, row.id)
        infos.append(_info(row, latest, latest.version, _attached_to(row.id, attachments)))
    return infos


def history(*, session: Session, name: str, tenant: str = "") -> list[ListInfo]:
    """Every version of the list, oldest first."""
    row = _find(session, name, tenant)
    versions = session.scalars(
        select(WordListVersion).where(WordListVersion.list_id == row.id).order_by(WordListVersion.version)
    ).all()
    latest = versions[-1].version
    return [_info(row, v, latest) for v in versions]


def served_lists(*, session: Session, at_revision: int | None = None) -> ServedLists:
    """The attached lists at `at_revision` (default: the latest), each at its version then."""
    revision = latest_revision(session=session) if at_revision is None else at_revision
    attached = _attachments(session, revision)
    ids = sorted({list_id for list_id, _, _ in attached})
    if not ids:
        return ServedLists(revision=revision, by_policy={}, by_tenant={})
    newest = (
        select(WordListVersion.list_id, func.max(WordListVersion.version).label("version"))
        .where(WordListVersion.list_id.in_(ids), WordListVersion.revision <= revision)
        .group_by(WordListVersion.list_id)
        .subquery()
    )
    rows = session.execute(
        select(WordList, WordListVersion)
        .join(WordListVersion, WordListVersion.list_id == WordList.id)
        .join(
            newest,
            (newest.c.list_id == WordListVersion.list_id) & (newest.c.version == WordListVersion.version),
        )
    ).all()
    current = {row.id: _snapshot(row, version) for row, version in rows}
    by_policy: dict[str, list[Snapshot]] = {}
    by_tenant: dict[str, list[Snapshot]] = {}
    for list_id, kind, target in sorted(attached):
        target_map = by_policy if kind == "policy" else by_tenant
        target_map.setdefault(target, []).append(current[list_id])
    return ServedLists(
        revision=revision,
        by_policy={k: tuple(v) for k, v in sorted(by_policy.items())},
        by_tenant={k: tuple(v) for k, v in sorted(by_tenant.items())},
    )


def snapshots(*, session: Session, refs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Snapshot]:
    """The stored list versions named by `refs` (list id, version), for replay; absent ones are left out."""
    out: dict[tuple[int, int], Snapshot] = {}
    for list_id, version in set(refs):
        row = session.get(WordList, list_id)
        stored = session.get(WordListVersion, (list_id, version))
        if row is not None and stored is not None:
            out[(list_id, version)] = _snapshot(row, stored)
    return out
