"""Anchors: the head's id and hash under an HMAC that only the key holder can make."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.audit.anchor import Anchor, AnchorError, authenticate, parse, sign

KEY = b"k" * 32
HEAD = "ab" * 32


def test_sign_makes_an_hmac_sha256_over_id_and_hash() -> None:
    anchor = sign(KEY, 7, HEAD)
    expected = hmac.new(KEY, b"modgate audit anchor v1\x00" + f"7:{HEAD}".encode(), hashlib.sha256)
    assert anchor == Anchor(7, HEAD, expected.hexdigest())
    assert str(anchor) == f"7:{HEAD}:{anchor.mac}"
    assert parse(str(anchor)) == anchor
    authenticate(anchor, KEY)


@pytest.mark.parametrize(
    "forged",
    [
        lambda a: Anchor(a.head_id + 1, a.head_hash, a.mac),  # another row, the same MAC
        lambda a: Anchor(a.head_id, "cd" * 32, a.mac),  # another hash, the same MAC
        lambda a: Anchor(a.head_id, a.head_hash, "0" * 64),  # a made-up MAC
        lambda a: sign(b"another key, thirty-two bytes long", a.head_id, a.head_hash),
    ],
)
def test_a_forged_anchor_is_refused(forged) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AnchorError, match="MAC does not match"):
        authenticate(forged(sign(KEY, 7, HEAD)), KEY)


def test_the_older_form_parses_without_a_mac_and_vouches_for_nothing() -> None:
    anchor = parse(f" 12:{HEAD}\n")
    assert anchor == Anchor(12, HEAD, None) and anchor.head == (12, HEAD) and str(anchor) == f"12:{HEAD}"
    with pytest.raises(AnchorError, match="no MAC"):
        authenticate(anchor, KEY)


@pytest.mark.parametrize(
    "text",
    ["", "12", f"0:{HEAD}", f"-1:{HEAD}", f"x:{HEAD}", "3:xyz", f"3:{HEAD.upper()}", f"3:{HEAD}:{HEAD}:x"],
)
def test_malformed_anchors_are_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(AnchorError, match="expected ID:HASH:MAC"):
        parse(text)


def test_short_keys_are_refused() -> None:
    with pytest.raises(AnchorError, match="at least 32 bytes"):
        sign(b"short", 1, HEAD)
