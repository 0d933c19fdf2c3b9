"""The edge checks of ids, names and filters (gateway/fields.py)."""

from __future__ import annotations

import uuid

import pytest

from gateway.errors import InvalidArgument
from gateway.fields import is_record_id, record_id, text, texts
from gateway.storage.base import new_id


def test_every_id_the_gateway_makes_is_a_record_id() -> None:
    assert all(is_record_id(new_id()) for _ in range(100))
    other_version = str(uuid.uuid1())
    assert record_id("item_id", other_version) == other_version  # the form is checked, not the version


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x",
        "x\x00y",
        str(uuid.uuid4()).upper(),
        str(uuid.uuid4()) + "0",
        " " + str(uuid.uuid4()),
        str(uuid.uuid4()) + "\n",
        uuid.uuid4().hex,
        "{" + str(uuid.uuid4()) + "}",
        "\u0661" * 8 + "-0000-4000-8000-000000000000",  # Arabic-Indic digits: not hex digits
    ],
)
def test_anything_else_is_refused_naming_the_field(value: str) -> None:
    assert not is_record_id(value)
    with pytest.raises(InvalidArgument) as info:
        record_id("item_id", value)
    assert info.value.field == "item_id" and str(info.value).startswith("item_id: ")


@pytest.mark.parametrize("value", ["", "acme", "tenant with spaces", "名前", "a" * 128, "e\u0301", "\u200b"])
def test_text_passes_names_and_filters(value: str) -> None:
    assert text("tenant", value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x\x00y", "must not contain control characters"),
        ("\x1b[2J", "must not contain control characters"),
        ("a\nb", "must not contain control characters"),
        ("\x7f", "must not contain control characters"),
        ("\x85", "must not contain control characters"),
        ("a" * 129, "must be at most 128 characters, got 129"),
    ],
)
def test_text_refuses_control_characters_and_long_values(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        text("actor", value)
    assert str(info.value).startswith(f"actor: {message}")


def test_texts_names_the_bad_entry_by_index() -> None:
    assert texts("categories", ["a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidArgument) as info:
        texts("categories", ["fine", "x\x00"])
    assert info.value.field == "categories[1]"
    with pytest.raises(InvalidArgument):
        text("name", "a" * 11, max_chars=10)
