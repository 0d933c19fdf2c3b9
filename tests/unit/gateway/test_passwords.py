"""Reviewer password hashing: Argon2id at OWASP's parameters by default, legacy scrypt hashes still
verify and always ask for a rehash."""

from __future__ import annotations

import base64
import hashlib

import pytest
from argon2 import Type as Argon2Type
from argon2 import extract_parameters

from gateway.config import Settings, SettingsError
from gateway.review.passwords import (
    OWASP,
    HashParams,
    hash_password,
    needs_rehash,
    password_params,
    verify_password,
)

CHEAP = HashParams(time_cost=1, memory_kib=8)


def legacy_scrypt_hash(password: str, *, n: int = 2**14, salt: bytes = b"0123456789abcdef") -> str:
    """A hash as modgate wrote them before Argon2: ``scrypt$n$r$p$salt$hash`` (urlsafe base64)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, dklen=32, maxmem=2**26)
    return f"scrypt${n}$8$1${b64(salt)}${b64(key)}"


def test_the_default_is_argon2id_at_the_owasp_recommendation() -> None:
    assert (OWASP.time_cost, OWASP.memory_kib, OWASP.parallelism) == (2, 19_456, 1)
    assert password_params(Settings()) == OWASP, "the settings' defaults are the recommendation too"
    encoded = hash_password("correct horse")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = extract_parameters(encoded)
    assert params.type is Argon2Type.ID and params.hash_len == 32 and params.salt_len == 16
    assert not OWASP.below_recommendation and CHEAP.below_recommendation


def test_round_trip_and_salting() -> None:
    first, second = hash_password("correct horse", params=CHEAP), hash_password("correct horse", params=CHEAP)
    assert first != second  # random salt
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsf", first)
    assert not verify_password("", first)
    assert not needs_rehash(first, params=CHEAP)


def test_parameters_are_read_from_the_hash_and_other_ones_need_a_rehash() -> None:
    cheap = hash_password("pw", params=CHEAP)
    assert verify_password("pw", cheap), "any stored parameters verify"
    assert needs_rehash(cheap), "weaker than the default: upgraded at the next login"
    assert not needs_rehash(hash_password("pw"))


def test_legacy_scrypt_hashes_still_verify_and_need_a_rehash() -> None:
    legacy = legacy_scrypt_hash("correct horse battery")
    assert verify_password("correct horse battery", legacy)
    assert not verify_password("correct horse batterz", legacy)
    assert needs_rehash(legacy) and needs_rehash(legacy, params=CHEAP)


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "plain",
        "bcrypt$1$2$3$4$5",
        "scrypt$x$8$1$aa$bb",
        "scrypt$16384$8$1$%%$bb",
        "scrypt$1073741824$8$1$aa$bb",  # a tampered row must not allocate gigabytes
        "$argon2id$v=19$m=19456,t=2,p=1$short",
        "$argon2id$v=19$m=nan,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_hashes_never_verify(broken: str) -> None:
    assert verify_password("pw", broken) is False
    assert needs_rehash(broken)


def test_tampered_hash_does_not_verify() -> None:
    for encoded in (hash_password("pw", params=CHEAP), legacy_scrypt_hash("pw", n=2**10)):
        head, digest = encoded.rsplit("$", 1)
        flipped = head + "$" + ("A" if digest[0] != "A" else "B") + digest[1:]
        assert not verify_password("pw", flipped)


def test_overlong_passwords_are_not_hashed() -> None:
    assert not verify_password("x" * 1025, hash_password("x" * 1025, params=CHEAP))


def test_settings_validate_the_password_cost() -> None:
    assert password_params(Settings(password_hash_time_cost=1, password_hash_memory_kib=8)) == CHEAP
    with pytest.raises(SettingsError, match="password_hash_memory_kib"):
        Settings(password_hash_memory_kib=4)
    with pytest.raises(SettingsError, match="password_hash_time_cost"):
        Settings(password_hash_time_cost=0)
    with pytest.raises(ValueError):
        HashParams(parallelism=0)
