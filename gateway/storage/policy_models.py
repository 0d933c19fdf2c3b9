"""Tables of the policies kept in the database (gateway/policies/): versions, activations, revisions.

Every change that alters what the moderator serves appends one `moderation_revisions` row in its own
transaction; replicas compare the highest revision with the one they built from (a single indexed read
on an interval, never per request) and rebuild when it moved. `policy_rules` keeps the resolved rules of
every policy version ever served, by their hash (`Policy.version`, which each decision records), so a
decision made under an older version can be replayed under exactly those rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base, UTCDateTime, json_type, utcnow


class PolicyVersion(Base):
    """One stored version of one named policy: the keys of its `[moderation.policies.NAME]` table as
    given (`extends` is resolved when a set of versions is activated, not here). Never changed or
    deleted; `id` is the VERSION operators name (`modgate policy activate VERSION`)."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    name: Mapped[str] = mapped_column(String(128), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(json_type())
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModerationRevision(Base):
    """One change of the served moderation configuration (the seed from the TOML file, an activation).
    `id` is assigned as the highest + 1, so two concurrent changes collide on the primary key and one
    is refused instead of both silently interleaving."""

    __tablename__ = "moderation_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PolicyActivation(Base):
    """Policy `name` serves `version_id` from `revision` on (until a later activation of that name)."""

    __tablename__ = "policy_activations"

    revision: Mapped[int] = mapped_column(ForeignKey("moderation_revisions.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), ForeignKey("policy_versions.id")
    )


class PolicyRules(Base):
    """The resolved rules (`Policy.canonical()`) of a policy as served, by their hash `Policy.version`."""

    __tablename__ = "policy_rules"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(json_type())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
