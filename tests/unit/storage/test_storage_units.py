"""Pure units of the data layer: password hashing, canonical JSON, UTC timestamps, URLs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from gateway.audit import GENESIS_HASH, canonical_json, compute_hash
from gateway.review.passwords import hash_password, needs_rehash, verify_password
from gateway.storage.base import UTCDateTime
from gateway.storage.engine import normalize_url


def test_password_round_trip_and_salting() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # random salt
    assert first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsf", first)
    assert not verify_password("", first)
    assert not needs_rehash(first)


def test_password_parameters_are_read_from_the_hash() -> None:
    cheap = hash_password("pw", n=2**10)
    assert verify_password("pw", cheap) and needs_rehash(cheap)


@pytest.mark.parametrize(
    "broken", ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$aa$bb", "scrypt$16384$8$1$%%$bb"]
)
def test_malformed_hashes_never_verify(broken: str) -> None:
    assert verify_password("pw", broken) is False


def test_tampered_hash_does_not_verify() -> None:
    encoded = hash_password("pw")
    head, digest = encoded.rsplit("$", 1)
    flipped = head + "$" + ("A" if digest[0] != "A" else "B") + digest[1:]
    assert not verify_password("pw", flipped)


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
