"""Policy versions in the database: seed from the TOML file, store a version, activate one, read them.

Data functions: `session` keyword, never commit (the CLI command or servicer owns the transaction).
A change of what is served (the seed, an activation) appends a `moderation_revisions` row in the same
transaction as the change and its audit event; replicas watch that number (gateway/policies/watcher.py).
`set_version` stores without serving: a version serves only once activated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import events
from gateway.audit.chain import append
from gateway.errors import FailedPrecondition, GatewayError, InvalidArgument, NotFound
from gateway.policies.resolve import check_name, resolve
from gateway.storage.policy_models import ModerationRevision, PolicyActivation, PolicyRules, PolicyVersion
from gateway.storage.tx import in_transaction
from moderation.config import ModerationConfigError
from moderation.policy import Policy

T = TypeVar("T")


class ConcurrentChange(GatewayError):
    """Another change of the moderation configuration committed first (both took the same revision
    number, or created the same name): this one was rolled back whole; retrying is safe."""

    grpc_status = "ABORTED"
    http_status = 409


async def in_config_change(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """One change of the stored moderation configuration (policies, word lists) in its own transaction;
    a collision with a concurrent change is `ConcurrentChange` (ABORTED: the client may retry), never a
    driver error that would surface as INTERNAL."""
    try:
        return await in_transaction(sessions, work)
    except IntegrityError:
        raise ConcurrentChange(
            "another change of the moderation configuration was committed at the same time; retry"
        ) from None


__all__ = [
    "ActiveSet",
    "VersionInfo",
    "activate",
    "active_set",
    "get_version",
    "history",
    "is_seeded",
    "latest_revision",
    "new_revision",
    "recorded_policy",
    "seed",
    "served_policies",
    "set_version",
]


@dataclass(frozen=True)
class VersionInfo:
    """A stored version as plain data (no ORM object outlives its transaction)."""

    version: int
    name: str
    body: dict[str, Any]
    created_by: str
    created_at: datetime
    # The revision that made it the served version of its name, and who did it; None: never served.
    activated_revision: int | None = None
    activated_by: str | None = None
    activated_at: datetime | None = None
    active: bool = False


@dataclass(frozen=True)
class ActiveSet:
    """What is served at `revision`: the version of each stored policy name, and its table."""

    revision: int
    versions: Mapping[str, int]
    tables: Mapping[str, Mapping[str, Any]]

    def policies(self) -> dict[str, Policy]:
        """The presets plus the stored policies, resolved. Raises ModerationConfigError."""
        return resolve(self.tables)


def latest_revision(*, session: Session) -> int:
    """The highest revision; 0 before the seed. The one read a replica makes on each check."""
    return int(session.scalar(select(func.max(ModerationRevision.id))) or 0)


def is_seeded(*, session: Session) -> bool:
    """Whether the config file's policies were stored (a word-list change may come first: it makes a
    revision too, so the revision number alone does not say it)."""
    return (
        session.scalar(select(ModerationRevision.id).where(ModerationRevision.kind == "seed").limit(1))
        is not None
    )


def _activations(session: Session, at_revision: int | None) -> dict[str, int]:
    query = select(PolicyActivation.name, PolicyActivation.version_id, PolicyActivation.revision)
    if at_revision is not None:
        query = query.where(PolicyActivation.revision <= at_revision)
    current: dict[str, tuple[int, int]] = {}
    for name, version_id, revision in session.execute(query):
        if name not in current or revision > current[name][1]:
            current[name] = (version_id, revision)
    return {name: version_id for name, (version_id, _) in current.items()}


def active_set(*, session: Session, at_revision: int | None = None) -> ActiveSet:
    """The served versions at `at_revision` (default: the latest)."""
    revision = latest_revision(session=session) if at_revision is None else at_revision
    versions = _activations(session, revision)
    query = select(PolicyVersion.id, PolicyVersion.body).where(PolicyVersion.id.in_(versions.values()))
    bodies: dict[int, dict[str, Any]] = {vid: body for vid, body in session.execute(query)}
    return ActiveSet(
        revision=revision,
        versions=dict(sorted(versions.items())),
        tables={name: bodies[vid] for name, vid in sorted(versions.items())},
    )


def new_revision(session: Session, *, kind: str, actor: str) -> int:
    """The next revision number. Two concurrent changes both compute it: the second one's commit fails
    on the primary key (refused, nothing half-applied)."""
    revision = latest_revision(session=session) + 1
    session.add(ModerationRevision(id=revision, kind=kind, actor=actor))
    session.flush()
    return revision


def _keep_rules(session: Session, policies: Mapping[str, Policy]) -> None:
    """Every policy as served, by its hash: what replay rebuilds an older decision's policy from."""
    known = set(
        session.scalars(
            select(PolicyRules.version).where(PolicyRules.version.in_([p.version for p in policies.values()]))
        )
    )
    for policy in policies.values():
        if policy.version not in known:
            session.add(PolicyRules(version=policy.version, rules=policy.canonical()))
            known.add(policy.version)


def _invalid(exc: ModerationConfigError) -> InvalidArgument:
    return InvalidArgument(str(exc))  # worded exactly as for the TOML file


def seed(*, session: Session, tables: Mapping[str, Mapping[str, Any]], actor: str) -> int | None:
    """The TOML file's policies become version 1.. and revision 1, if nothing was ever stored; returns
    the revision, or None when the database was already seeded (then the database is the source of
    truth and the TOML's policies are not read again). Two replicas seeding at once: one commit fails
    on the same new revision and that replica reads the other's seed."""
    if is_seeded(session=session):
        return None
    try:
        policies = resolve(tables)
    except ModerationConfigError as exc:
        raise _invalid(exc) from None
    revision = new_revision(session, kind="seed", actor=actor)
    for name, table in tables.items():
        version = PolicyVersion(name=name, body=dict(table), created_by=actor)
        session.add(version)
        session.flush()
        session.add(PolicyActivation(revision=revision, name=name, version_id=version.id))
    _keep_rules(session, policies)
    if not tables:  # nothing stored, nothing served differently: the revision only marks "seeded"
        return revision
    append(
        session=session,
        event_type=events.POLICY_SEEDED,
        actor=actor,
        action="seed",
        payload={"revision": revision, "policies": {n: policies[n].version for n in tables}},
    )
    return revision


def set_version(*, session: Session, name: str, table: Mapping[str, Any], actor: str) -> VersionInfo:
    """Stores a new version of policy `name` (a new name too), checked as the TOML file's table would be
    against the served policies (its `extends` included). Not served until `activate`."""
    try:
        check_name(name)
        current = active_set(session=session)
        resolved = resolve({**current.tables, name: table})
    except ModerationConfigError as exc:
        raise _invalid(exc) from None
    version = PolicyVersion(name=name, body=dict(table), created_by=actor)
    session.add(version)
    session.flush()
    append(
        session=session,
        event_type=events.POLICY_VERSION_CREATED,
        actor=actor,
        action="set",
        payload={"name": name, "version": version.id, "rules_version": resolved[name].version},
    )
    return _info(version, None)


def activate(*, session: Session, version: int, actor: str) -> tuple[int, VersionInfo]:
    """Serves stored `version` for its policy name from a new revision on (returned with the version).
    Checked again against what is served now (an `extends` target may have changed)."""
    row = session.get(PolicyVersion, version)
    if row is None:
        raise NotFound(f"no policy version {version}")
    current = active_set(session=session)
    previous = current.versions.get(row.name)
    if previous == version:
        raise FailedPrecondition(f"version {version} is already the active version of policy {row.name!r}")
    try:
        policies = resolve({**current.tables, row.name: row.body})
    except ModerationConfigError as exc:
        raise _invalid(exc) from None
    revision = new_revision(session, kind="activate", actor=actor)
    session.add(PolicyActivation(revision=revision, name=row.name, version_id=version))
    _keep_rules(session, policies)
    append(
        session=session,
        event_type=events.POLICY_ACTIVATED,
        actor=actor,
        action="activate",
        payload={
            "name": row.name,
            "version": version,
            "previous_version": previous,
            "revision": revision,
            "rules_version": policies[row.name].version,
        },
    )
    session.flush()
    return revision, _info(row, (revision, actor, None), active=True)


def _info(
    row: PolicyVersion, activation: tuple[int, str, datetime | None] | None, *, active: bool = False
) -> VersionInfo:
    return VersionInfo(
        version=row.id,
        name=row.name,
        body=dict(row.body),
        created_by=row.created_by,
        created_at=row.created_at,
        activated_revision=activation[0] if activation else None,
        activated_by=activation[1] if activation else None,
        activated_at=activation[2] if activation else None,
        active=active,
    )


def _last_activations(session: Session) -> dict[int, tuple[int, str, datetime | None]]:
    """Per version: the latest revision that activated it, by whom, when."""
    rows = session.execute(
        select(
            PolicyActivation.version_id,
            ModerationRevision.id,
            ModerationRevision.actor,
            ModerationRevision.created_at,
        )
        .join(ModerationRevision, ModerationRevision.id == PolicyActivation.revision)
        .order_by(ModerationRevision.id)
    )
    return {version_id: (revision, actor, at) for version_id, revision, actor, at in rows}


def get_version(*, session: Session, version: int) -> VersionInfo:
    row = session.get(PolicyVersion, version)
    if row is None:
        raise NotFound(f"no policy version {version}")
    active = active_set(session=session).versions.get(row.name) == version
    return _info(row, _last_activations(session).get(version), active=active)


def served_infos(*, session: Session, served: ActiveSet) -> dict[str, VersionInfo]:
    """The version `served` serves of each policy, by name, in its order: what `get_version` says of
    each, read in one pass (not one `active_set` and activations scan per policy)."""
    activations = _last_activations(session)
    query = select(PolicyVersion).where(PolicyVersion.id.in_(served.versions.values()))
    rows = {row.id: row for row in session.scalars(query)}
    return {
        name: _info(rows[vid], activations.get(vid), active=True) for name, vid in served.versions.items()
    }


def history(*, session: Session, name: str | None = None) -> list[VersionInfo]:
    """Every stored version (of `name`), oldest first, with when it was last activated and whether it
    is served now."""
    query = select(PolicyVersion).order_by(PolicyVersion.id)
    if name is not None:
        query = query.where(PolicyVersion.name == name)
    served = set(active_set(session=session).versions.values())
    activations = _last_activations(session)
    return [_info(row, activations.get(row.id), active=row.id in served) for row in session.scalars(query)]


def recorded_policy(*, session: Session, name: str, version: str) -> Policy | None:
    """Policy `name` with the rules it had under hash `version` (as a decision records it), if this
    database ever served it; None otherwise."""
    rules = session.scalar(select(PolicyRules.rules).where(PolicyRules.version == version))
    if rules is None:
        return None
    policy = Policy.from_canonical(name, rules)
    return policy if policy.version == version else None


def served_policies(*, session: Session, tables: Mapping[str, Mapping[str, Any]]) -> dict[str, Policy]:
    """The policies a gateway on this database serves: the stored ones once seeded, else the config
    file's `tables` (what the first `serve` will seed). For commands that judge or report on policies
    (`policy report`, `policy backtest`) without running a server. Raises ModerationConfigError."""
    if is_seeded(session=session):
        return active_set(session=session).policies()
    return resolve(tables)
