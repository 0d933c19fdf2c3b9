"""Pure units of the data layer: canonical JSON, UTC timestamps, URLs (passwords: tests/unit/gateway/
test_passwords.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from gateway.audit import GENESIS_HASH, canonical_json, compute_hash
from gateway.storage.base import UTCDateTime
from gateway.storage.engine import normalize_url, redact_url


def test_canonical_json_is_order_and_space_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == '{"a":[1,{"c":"é","d":2}],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


def test_compute_hash_known_value() -> None:
    expected = hashlib.sha256((GENESIS_HASH + '{"a":1}').encode()).hexdigest()
    assert compute_hash(GENESIS_HASH, {"a": 1}) == expected
    assert compute_hash("1" * 64, {"a": 1}) != expected


def test_utc_datetime_normalises_and_refuses_naive() -> None:
    column = UTCDateTime()
    plus2 = datetime(2030, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    stored = column.process_bind_param(plus2, sqlite.dialect())
    assert stored == datetime(2030, 1, 1, 12, 0)  # naive UTC text on SQLite: sorts correctly
    assert column.process_bind_param(plus2, postgresql.dialect()) == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert column.process_result_value(stored, sqlite.dialect()) == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert column.process_result_value(plus2, postgresql.dialect()).tzinfo is UTC  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2030, 1, 1), sqlite.dialect())


def test_normalize_url_picks_psycopg3() -> None:
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert normalize_url("sqlite:///var/modgate.db") == "sqlite:///var/modgate.db"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://app:s3cret@db.internal:5432/modgate",
            "postgresql+psycopg://app:***@db.internal:5432/modgate",
        ),
        ("postgresql://app:p%40ss%3Aw%2Frd@h/db", "postgresql://app:***@h/db"),  # an encoded '@', ':' and '/'
        ("postgresql://:s3cret@h/db", "postgresql://:***@h/db"),  # a password without a user
        ("postgresql://app:@h/db", "postgresql://app:***@h/db"),  # an empty one: still not shown
        (
            "postgresql://app:s3cret@/db?host=/run/postgresql",
            "postgresql://app:***@/db?host=%2Frun%2Fpostgresql",
        ),
        (
            "postgresql://h/db?password=s3cret&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("postgresql://app@h/db?sslpassword=s3cret", "postgresql://app@h/db?sslpassword=***"),
        ("postgresql://app:s3cret@h/db?PASSWORD=s3cret", "postgresql://app:***@h/db?PASSWORD=***"),
    ],
)
def test_redact_url_hides_every_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "p%40ss" not in redact_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///var/modgate.db",
        "sqlite:////abs/path/with:colon@at.db",
        "sqlite://",
        "postgresql+psycopg://app@db.internal:5432/modgate",
        "postgresql:///modgate?host=/run/postgresql&sslmode=require",
    ],
)
def test_redact_url_leaves_a_url_without_password_unchanged(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize("url", ["", "not a url", "://s3cret@", "postgresql://app:s3cret@h:notaport/db"])
def test_redact_url_echoes_nothing_of_an_unparsable_url(url: str) -> None:
    assert redact_url(url) == "<invalid database URL>"
