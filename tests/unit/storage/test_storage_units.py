"""Pure units of the data layer: canonical JSON, UTC timestamps, URLs (passwords: tests/unit/gateway/
test_passwords.py)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from gateway.audit import GENESIS_HASH, canonical_json, compute_hash
from gateway.storage.base import UTCDateTime
from gateway.storage.engine import normalize_url


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
