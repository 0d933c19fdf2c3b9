"""Reviewer password hashing: Argon2id through argon2-cffi, with the legacy scrypt hashes still verified.

New hashes are PHC strings (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``) at OWASP's current
recommendation for Argon2id (19 MiB, 2 passes, 1 lane). The string carries its own parameters, so
:func:`needs_rehash` (argon2-cffi's ``check_needs_rehash``) tells the login path when a stored hash is
weaker or other than the configured one, and the login upgrades it with the password it just verified.

Hashes written before Argon2 (``scrypt$n$r$p$salt$hash``, standard library) keep verifying, and always
need a rehash: the first successful login after the upgrade replaces them.

The cost is a setting (:class:`HashParams`, ``password_hash_*``) only so that tests can run with cheap
parameters; the defaults are the recommendation, and a cost below it is logged as a warning.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

if TYPE_CHECKING:
    from gateway.config import Settings

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # bounds the work an unauthenticated login request can cause
SALT_BYTES = 16
KEY_BYTES = 32


@dataclass(frozen=True)
class HashParams:
    """Argon2id cost parameters. The defaults are OWASP's Password Storage Cheat Sheet recommendation."""

    time_cost: int = 2
    memory_kib: int = 19_456  # 19 MiB
    parallelism: int = 1

    def __post_init__(self) -> None:
        if self.time_cost < 1 or self.parallelism < 1 or self.memory_kib < 8 * self.parallelism:
            raise ValueError(
                "password hashing needs time_cost >= 1, parallelism >= 1 and memory_kib >= 8 x parallelism"
            )

    @property
    def below_recommendation(self) -> bool:
        return self.time_cost < OWASP.time_cost or self.memory_kib < OWASP.memory_kib


OWASP = HashParams()


def password_params(settings: Settings) -> HashParams:
    """The configured cost (``password_hash_*``); a cost below the recommendation is announced."""
    params = HashParams(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )
    if params.below_recommendation:
        log.warning(
            "reviewer passwords are hashed below the recommended cost (Argon2id m=%d KiB, t=%d); "
            "keep the password_hash_* defaults outside tests",
            OWASP.memory_kib,
            OWASP.time_cost,
        )
    return params


@functools.cache
def _hasher(params: HashParams) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        salt_len=SALT_BYTES,
        type=Type.ID,
    )


def check_password_policy(password: str) -> None:
    """Raise ValueError for a password too short or too long to accept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str, *, params: HashParams = OWASP) -> str:
    """Hash ``password`` with a fresh random salt; returns the PHC string."""
    return _hasher(params).hash(password)


def verify_password(password: str, encoded: str) -> bool:
    """Check ``password`` against a stored hash (Argon2 PHC or legacy scrypt); False for malformed ones.

    Slow by design (tens of milliseconds): never call it inside a database transaction.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    if encoded.startswith("scrypt$"):
        return _verify_scrypt(password, encoded)
    try:
        # Any verifier checks any Argon2 string: the parameters come from the string itself.
        return _hasher(OWASP).verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str, *, params: HashParams = OWASP) -> bool:
    """Whether ``encoded`` is a legacy scrypt hash or an Argon2 hash with other parameters than ``params``."""
    if not encoded.startswith("$argon2"):
        return True
    try:
        return _hasher(params).check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify_scrypt(password: str, encoded: str) -> bool:
    """The pre-Argon2 format ``scrypt$n$r$p$salt$hash`` (urlsafe base64, no padding), constant time."""
    try:
        scheme, n_text, r_text, p_text, salt, expected = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        if scheme != "scrypt" or not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
            return False  # a tampered row must not make a login allocate gigabytes
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=n,
            r=r,
            p=p,
            dklen=KEY_BYTES,
            maxmem=256 * n * r * p + 2**20,
        )
        return hmac.compare_digest(actual, _unb64(expected))
    except (ValueError, TypeError):
        return False


@functools.cache
def dummy_hash(params: HashParams = OWASP) -> str:
    """A hash to verify against when the username is unknown, so a login takes as long either way.

    Computed on first use, not at import (it costs one Argon2 run).
    """
    return hash_password(secrets.token_urlsafe(16), params=params)
