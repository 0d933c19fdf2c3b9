"""Reviewer password hashing: scrypt (memory-hard, in the standard library) with a random salt.

Encoded as ``scrypt$n$r$p$salt$hash`` (base64, no padding) so the cost can be raised later without
breaking stored hashes: :func:`verify_password` reads the parameters from the string, and
:func:`needs_rehash` tells the login path when to re-hash with the current ones.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# 16 MiB and ~50 ms per hash on one core of this machine class: slow for an attacker, fine for a login.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # bounds the work an unauthenticated login request can cause


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=256 * n * r * p + 2**20
    )


def check_password_policy(password: str) -> None:
    """Raise ValueError for a password too short or too long to accept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Hash ``password`` with a fresh random salt; returns the self-describing encoded string."""
    salt = secrets.token_bytes(SALT_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against an encoded hash; False for malformed hashes."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
        return hmac.compare_digest(actual, _unb64(expected))
    except (ValueError, TypeError):
        return False


def needs_rehash(encoded: str) -> bool:
    """Whether ``encoded`` uses other parameters than the current defaults."""
    return not encoded.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against when the username is unknown, so a login takes as long either way.

    Computed on first use, not at import (it costs one scrypt run).
    """
    return hash_password(secrets.token_urlsafe(16))
