"""Tables of the word lists kept in the database (gateway/wordlists/): lists, versions, attachments.

A list is named per owner (a tenant, or "" for a global list). Every change of its entries stores a new
immutable version (all its entries, not a delta), so a decision that recorded `list 3 version 2` can be
replayed with exactly those entries. Attachments are append-only rows like policy activations: the
latest row of a (list, target) pair at a revision says whether the list is attached there. Each change
appends a `moderation_revisions` row in its transaction, which is what replicas watch.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base, UTCDateTime, json_type, utcnow

_ID = BigInteger().with_variant(Integer(), "sqlite")


class WordList(Base):
    """A named list; `tenant` "" is a global list (attachable to policies and tenants), otherwise the
    list belongs to that tenant and is attachable to that tenant only."""

    __tablename__ = "word_lists"
    __table_args__ = (UniqueConstraint("tenant", "name"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WordListVersion(Base):
    """The complete entries of list `list_id` from `revision` on: block entries and allow entries, in
    the syntax of the shipped lists (moderation/data/*.txt), normalised. Never changed or deleted."""

    __tablename__ = "word_list_versions"

    list_id: Mapped[int] = mapped_column(_ID, ForeignKey("word_lists.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(ForeignKey("moderation_revisions.id"), index=True)
    words: Mapped[list[str]] = mapped_column(json_type())
    allow: Mapped[list[str]] = mapped_column(json_type())
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WordListAttachment(Base):
    """From `revision` on, list `list_id` is (`attached`) or is no longer (not `attached`) applied to
    the decisions of `target_kind` "policy" (every tenant deciding under that policy) or "tenant"."""

    __tablename__ = "word_list_attachments"

    revision: Mapped[int] = mapped_column(ForeignKey("moderation_revisions.id"), primary_key=True)
    list_id: Mapped[int] = mapped_column(_ID, ForeignKey("word_lists.id"), primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    attached: Mapped[bool] = mapped_column(Boolean)
