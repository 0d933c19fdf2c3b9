"""Anchoring the audit chain (item 13) and printing its events safely (item 11): the server's anchor
keeper, `modgate audit anchor`, `verify --expect-head`, and `audit query` with hostile actors."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway import audit
from gateway.audit.anchor import Anchor, parse, sign
from gateway.audit.keeper import AnchorKeeper, ChainBroken, anchor_keeper, anchor_key, anchor_once
from gateway.commands.audit import audit_group
from gateway.config import Settings, SettingsError
from tests.support.audit_tamper import tampering

KEY = "an anchor key of thirty-two chars or more"
ExecSql = Callable[..., None]


def _append(db: sessionmaker[Session], n: int, actor: str = "cli:ops") -> None:
    with db() as s, s.begin():
        for i in range(n):
            audit.append(session=s, event_type="key.created", actor=actor, tenant="acme", payload={"i": i})


def _rewrite_from(engine: Engine, first: int, count: int) -> None:
    with tampering(engine) as conn, Session(bind=conn) as s:
        s.execute(text("DELETE FROM audit_events WHERE id >= :first"), {"first": first})
        for i in range(count):
            audit.append(session=s, event_type="key.created", actor="intruder", payload={"i": i})
        s.flush()


def _record(keeper: AnchorKeeper, db: sessionmaker[Session]) -> Anchor | None:
    with db() as s, s.begin():
        return keeper.record(s)


# --- the server's keeper -----------------------------------------------------------------------------


def test_keeper_anchors_the_head_once_per_change_and_keeps_it_outside_the_database(
    db: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "anchors.log"
    keeper = AnchorKeeper(KEY.encode(), path)
    assert _record(keeper, db) is None and not path.exists()  # an empty log: nothing to anchor
    _append(db, 3)
    with caplog.at_level(logging.INFO, logger="gateway.audit.keeper"):
        first = _record(keeper, db)
    assert first is not None and first.head_id == 3 and f"audit anchor {first}" in caplog.text
    assert _record(keeper, db) == first  # nothing new: no new line
    _append(db, 2)
    second = _record(keeper, db)
    assert second is not None and second.head_id == 5
    lines = path.read_text().splitlines()
    assert [parse(line.split()[-1]) for line in lines] == [first, second]

    resumed = AnchorKeeper(KEY.encode(), path)  # a restart, or another replica sharing the file
    assert resumed.latest() == second
    stranger = AnchorKeeper(b"another key that is thirty-two bytes", path)
    with caplog.at_level(logging.WARNING, logger="gateway.audit.keeper"):
        assert stranger.latest() is None
    assert "2 line(s) are not authentic" in caplog.text


def test_keeper_ignores_forged_lines_in_the_file(db: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "anchors.log"
    keeper = AnchorKeeper(KEY.encode(), path)
    _append(db, 2)
    good = _record(keeper, db)
    with path.open("a") as fh:
        fh.write(f"2026-11-30T00:00:00Z 99:{'ab' * 32}:{'cd' * 32}\nnot an anchor\n")
    assert AnchorKeeper(KEY.encode(), path).latest() == good


@pytest.mark.parametrize("attack", ["truncate", "rewrite", "edit"])
def test_keeper_refuses_to_anchor_a_chain_that_does_not_extend_its_last_anchor(
    db: sessionmaker[Session],
    engine: Engine,
    exec_sql: ExecSql,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    attack: str,
) -> None:
    path = tmp_path / "anchors.log"
    keeper = AnchorKeeper(KEY.encode(), path)
    _append(db, 4)
    last = _record(keeper, db)
    assert last is not None
    if attack == "truncate":
        exec_sql("DELETE FROM audit_events WHERE id >= 3")
    elif attack == "rewrite":
        _rewrite_from(engine, 2, 5)  # longer than before, hashes recomputed
    else:
        _append(db, 2)
        exec_sql("UPDATE audit_events SET actor = 'x' WHERE id = 6")
    with pytest.raises(ChainBroken, match="since anchor 4"):
        _record(keeper, db)
    with caplog.at_level(logging.ERROR, logger="gateway.audit.keeper"):
        assert anchor_once(keeper, db) is None
    assert "no new anchor recorded" in caplog.text
    assert keeper.latest() == last and len(path.read_text().splitlines()) == 1


def test_the_first_anchor_needs_a_whole_intact_chain(db: sessionmaker[Session], exec_sql: ExecSql) -> None:
    _append(db, 3)
    exec_sql("UPDATE audit_events SET tenant = 'globex' WHERE id = 1")
    with pytest.raises(ChainBroken, match="in a whole walk, at row 1"):
        _record(AnchorKeeper(KEY.encode()), db)


def test_keeper_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.audit.keeper"):
        assert anchor_keeper(Settings()) is None
    assert "audit anchoring is off" in caplog.text
    key_file = tmp_path / "anchor.key"
    key_file.write_text(KEY + "\n")
    assert anchor_key(Settings(audit_anchor_key_file=str(key_file))) == KEY.encode()
    assert anchor_key(Settings(audit_anchor_key=KEY)) == KEY.encode()
    key_file.write_text("short\n")
    with pytest.raises(SettingsError, match="at least 32"):
        anchor_key(Settings(audit_anchor_key_file=str(key_file)))
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(audit_anchor_key="short")
    with pytest.raises(SettingsError, match="give one or neither"):
        Settings(audit_anchor_key=KEY, audit_anchor_key_file=str(key_file))
    with pytest.raises(SettingsError, match="no such file"):
        Settings(audit_anchor_key_file=str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="audit_anchor_interval_s"):
        Settings(audit_anchor_interval_s=0)
    with pytest.raises(SettingsError, match="cannot append"):
        anchor_keeper(Settings(audit_anchor_key=KEY, audit_anchor_file=str(tmp_path / "no" / "dir" / "f")))
    keeper = anchor_keeper(Settings(audit_anchor_key=KEY, audit_anchor_file=str(tmp_path / "a.log")))
    assert keeper is not None and keeper.latest() is None


# --- the CLI -------------------------------------------------------------------------------------------


def _cli(url: str, *args: str, key: str | None = KEY) -> Result:
    env = {"MODGATE_AUDIT_ANCHOR_KEY": key} if key is not None else {"MODGATE_AUDIT_ANCHOR_KEY": ""}
    return CliRunner().invoke(audit_group, ["--database-url", url, *args], env=env, catch_exceptions=False)


def _refused(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "Error" in result.stderr
    return result.stderr


def test_anchor_then_verify_expect_head(db_url: str, db: sessionmaker[Session]) -> None:
    _append(db, 3)
    made = _cli(db_url, "anchor")
    assert made.exit_code == 0, made.output
    anchor = parse(made.stdout)
    assert anchor == sign(KEY.encode(), 3, anchor.head_hash)
    ok = _cli(db_url, "verify", "--expect-head", str(anchor))
    assert ok.exit_code == 0 and "OK: 3 rows (contains anchored head 3)" in ok.stdout
    _append(db, 2)  # the chain grew: the old anchor is still in it
    assert _cli(db_url, "verify", "--expect-head", str(anchor)).exit_code == 0
    assert _cli(db_url, "anchor", "--expect-head", str(anchor)).stdout.startswith("5:")


def test_verify_expect_head_catches_truncation(
    db_url: str, db: sessionmaker[Session], exec_sql: ExecSql
) -> None:
    _append(db, 4)
    anchor = _cli(db_url, "anchor").stdout.strip()
    exec_sql("DELETE FROM audit_events WHERE id = 4")
    assert _cli(db_url, "verify").exit_code == 0  # a bare chain cannot tell
    message = _refused(_cli(db_url, "verify", "--expect-head", anchor))
    assert (
        "TAMPERED at row 4" in message and "anchored row 4 is missing (head is 3): log truncated" in message
    )


def test_verify_expect_head_catches_a_rewrite_with_recomputed_hashes(
    db_url: str, db: sessionmaker[Session], engine: Engine
) -> None:
    _append(db, 4)
    anchor = _cli(db_url, "anchor").stdout.strip()
    _rewrite_from(engine, 2, 6)
    assert _cli(db_url, "verify").exit_code == 0  # self-consistent
    message = _refused(_cli(db_url, "verify", "--expect-head", anchor))
    assert "TAMPERED at row 4" in message and "rewritten at or before row 4" in message
    assert "TAMPERED" in _refused(_cli(db_url, "anchor", "--expect-head", anchor))


def test_forged_anchors_are_refused(db_url: str, db: sessionmaker[Session], engine: Engine) -> None:
    """Someone who rewrote the log cannot hand the verifier an anchor for the rewritten chain."""
    _append(db, 3)
    _rewrite_from(engine, 2, 3)
    with db() as s:
        head = audit.verify(session=s)
    assert head.head_id is not None and head.head_hash is not None
    forged = sign(b"the intruder's own key, 32 bytes!", head.head_id, head.head_hash)
    assert "anchor REFUSED" in _refused(_cli(db_url, "verify", "--expect-head", str(forged)))
    assert "MAC does not match" in _refused(_cli(db_url, "verify", "--expect-head", str(forged)))
    # A MAC needs the key to be checked: without it, a usage error (exit 2), not a silent pass.
    assert "needs the anchor key" in _refused(
        _cli(db_url, "verify", "--expect-head", str(forged), key=None), 2
    )
    assert "expected ID:HASH:MAC" in _refused(_cli(db_url, "verify", "--expect-head", "3:xyz"), 2)


def test_the_older_anchor_form_still_works_with_a_warning(db_url: str, db: sessionmaker[Session]) -> None:
    _append(db, 2)
    head = _cli(db_url, "verify").stdout.strip().rsplit(" ", 1)[1]
    legacy = _cli(db_url, "verify", "--anchor", head, key=None)
    assert legacy.exit_code == 0 and "nothing vouches" in legacy.stderr
    assert _refused(_cli(db_url, "verify", "--anchor", head.split(":")[0] + ":" + "f" * 64, key=None))


def test_anchor_needs_a_key_and_an_intact_chain(
    db_url: str, db: sessionmaker[Session], exec_sql: ExecSql
) -> None:
    assert "no anchor key" in _refused(_cli(db_url, "anchor", key=None), 2)
    empty = _cli(db_url, "anchor")
    assert empty.exit_code == 0 and empty.stdout == "" and "nothing to anchor" in empty.stderr
    _append(db, 2)
    exec_sql("UPDATE audit_events SET actor = 'x' WHERE id = 1")
    assert "not anchoring" in _refused(_cli(db_url, "anchor"))


# --- item 11: hostile text in `audit query` ------------------------------------------------------------

HOSTILE = "evil\x1b[2J\nfake\u2028row\x9b31m\u202e\\x1b"


def test_query_table_escapes_control_characters(db_url: str, db: sessionmaker[Session]) -> None:
    _append(db, 1, actor=HOSTILE)
    _append(db, 1)
    table = _cli(db_url, "query")
    assert table.exit_code == 0
    lines = table.stdout.split("\n")
    assert len(lines) == 3 and lines[2] == ""  # two rows, two lines: no faked row
    assert all(ch.isprintable() for ch in table.stdout.replace("\n", ""))
    assert "evil\\x1b[2J\\nfake\\u2028row\\x9b31m\\u202e\\\\x1b" in lines[0]


def test_query_json_and_csv_keep_the_exact_text_without_breaking_the_format(
    db_url: str, db: sessionmaker[Session]
) -> None:
    _append(db, 1, actor=HOSTILE)
    _append(db, 1)
    as_json = _cli(db_url, "query", "--json").stdout
    assert all(ch.isprintable() for ch in as_json.replace("\n", ""))
    assert len(as_json.splitlines()) == 2  # str.splitlines also splits at U+2028: none left raw
    assert [json.loads(line)["actor"] for line in as_json.splitlines()] == [HOSTILE, "cli:ops"]
    rows = list(csv.DictReader(io.StringIO(_cli(db_url, "query", "--csv").stdout)))
    assert [r["actor"] for r in rows] == [HOSTILE, "cli:ops"]
