"""`modgate audit`: verify the hash chain (against an anchor), make an anchor, query events (table,
JSON lines or CSV).

Audit rows carry text from outside (an actor is the user name of a failed login, request ids come from
API clients), so every format is written so that such text can neither drive the terminal nor break
the format: the table escapes non-printable characters, JSON lines escape them as ``\\uXXXX`` (the data
stays exact), CSV quotes them (exact as well) and defuses spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from gateway.commands.db import database_url_option, open_session, store_database_url
from gateway.commands.settings import command_settings

if TYPE_CHECKING:
    from gateway.audit.anchor import Anchor

COLUMNS = ("id", "created_at", "event_type", "actor", "tenant", "request_id", "ticket", "action", "payload")


class Timestamp(click.ParamType):
    """An ISO 8601 date or datetime; without a zone it is taken as UTC."""

    name = "TIMESTAMP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 timestamp (e.g. 2026-11-23T09:30:00Z)", param, ctx)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _anchor_key(ctx: click.Context) -> bytes | None:
    from gateway.audit.keeper import anchor_key
    from gateway.config import SettingsError

    try:
        return anchor_key(command_settings(ctx))
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _checked_anchor(ctx: click.Context, text: str) -> Anchor:
    """The anchor in ``text``, its MAC checked with the configured key (exit 1 if it fails: a forged
    anchor is refused). The older ``ID:HASH`` form is accepted with a warning: nothing vouches for it."""
    from gateway.audit.anchor import AnchorError, authenticate, parse

    try:
        anchor = parse(text)
    except AnchorError as exc:
        raise click.BadParameter(str(exc), param_hint="--expect-head") from None
    if anchor.mac is None:
        click.echo(
            "warning: an anchor without a MAC (ID:HASH) is checked against the chain, but nothing vouches "
            "for where it came from; use one printed by `modgate audit anchor`",
            err=True,
        )
        return anchor
    key = _anchor_key(ctx)
    if key is None:
        raise click.UsageError(
            "--expect-head: checking an anchor's MAC needs the anchor key "
            "(MODGATE_AUDIT_ANCHOR_KEY, audit_anchor_key or audit_anchor_key_file)"
        )
    try:
        authenticate(anchor, key)
    except AnchorError as exc:
        raise click.ClickException(f"anchor REFUSED: {exc}") from None
    return anchor


@click.group(name="audit")
@database_url_option
@click.pass_context
def audit_group(ctx: click.Context, database_url: str | None) -> None:
    """The audit log: verify its hash chain, anchor its head, query its events."""
    store_database_url(ctx, database_url)


@audit_group.command()
@click.option(
    "--expect-head",
    "--anchor",
    "expect_head",
    metavar="ANCHOR",
    help="An anchor (ID:HASH:MAC from `modgate audit anchor` or the server's log); fails if that row "
    "changed or is gone, or if the MAC is not valid. --anchor is the older name.",
)
@click.pass_context
def verify(ctx: click.Context, expect_head: str | None) -> None:
    """Check every row's hash and link, and the anchored head; exit 1 naming the first bad row."""
    from gateway.audit import verify as verify_chain

    anchor = _checked_anchor(ctx, expect_head) if expect_head is not None else None
    with open_session(ctx) as session:
        result = verify_chain(session=session, anchor=anchor.head if anchor is not None else None)
    if not result.ok:
        raise click.ClickException(
            f"audit log TAMPERED at row {result.first_bad_id}: {result.problem} "
            f"({result.checked} rows verified before it)"
        )
    anchored = f" (contains anchored head {anchor.head_id})" if anchor is not None else ""
    if result.head_id is None:
        click.echo("audit log OK: empty")
    else:
        click.echo(f"audit log OK: {result.checked} rows{anchored}; head {result.head_id}:{result.head_hash}")


@audit_group.command()
@click.option(
    "--expect-head",
    "expect_head",
    metavar="ANCHOR",
    help="The previous anchor: refuse to anchor a chain that does not still contain it.",
)
@click.pass_context
def anchor(ctx: click.Context, expect_head: str | None) -> None:
    """Verify the whole chain, then print its head as ID:HASH:MAC (HMAC-SHA256 with the anchor key).

    Keep the line somewhere the database's users cannot write (a log pipeline, another host); give it
    back to `modgate audit verify --expect-head` to detect a truncated or rewritten log.
    """
    from gateway.audit import verify as verify_chain
    from gateway.audit.anchor import sign

    key = _anchor_key(ctx)
    if key is None:
        raise click.UsageError(
            "no anchor key: set MODGATE_AUDIT_ANCHOR_KEY (32+ characters), audit_anchor_key or "
            "audit_anchor_key_file, the same key the server uses"
        )
    previous = _checked_anchor(ctx, expect_head) if expect_head is not None else None
    with open_session(ctx) as session:
        result = verify_chain(session=session, anchor=previous.head if previous is not None else None)
    if not result.ok:
        raise click.ClickException(
            f"not anchoring: audit log TAMPERED at row {result.first_bad_id}: {result.problem}"
        )
    if result.head_id is None or result.head_hash is None:
        click.echo("audit log is empty: nothing to anchor", err=True)
        return
    click.echo(str(sign(key, result.head_id, result.head_hash)))


def printable(text: str) -> str:
    """``text`` as a terminal can show it without obeying it: a backslash and every non-printable
    character (controls such as ESC and newline, format characters such as bidi overrides and zero-width
    spaces) are written as Python escapes, so an actor ``x\\x1b[2J`` clears no screen and an actor with a
    newline fakes no row. The backslash is escaped too, so the output never looks like another value."""
    return "".join("\\\\" if ch == "\\" else ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


_NON_ASCII = re.compile(r"[^\x20-\x7e]")


def json_line(row: dict[str, Any]) -> str:
    """One JSON object on one line, with the same data as ``json.dumps``, but every non-printable
    character escaped as ``\\uXXXX`` (json.dumps leaves C1 controls, U+2028/2029 and bidi overrides raw,
    and line-splitting readers break lines at some of them)."""
    text = json.dumps(row, ensure_ascii=False, sort_keys=True)
    return _NON_ASCII.sub(lambda m: m[0] if m[0].isprintable() else json.dumps(m[0])[1:-1], text)


def _csv_cell(column: str, value: Any) -> Any:
    """Payload as JSON; formulas defused (`gateway.audit.export`)."""
    from gateway.audit.export import defuse_formula, payload_json

    return defuse_formula(payload_json(value) if column == "payload" else value)


def _row(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": event.created_at.isoformat(timespec="microseconds"),
        "event_type": event.event_type,
        "actor": event.actor,
        "tenant": event.tenant,
        "request_id": event.request_id,
        "ticket": event.ticket,
        "action": event.action,
        "payload": event.payload,
        "hash": event.hash,
    }


@audit_group.command()
@click.option("--since", type=Timestamp(), help="From this time (inclusive), ISO 8601, UTC if no zone.")
@click.option("--until", type=Timestamp(), help="Up to this time (exclusive).")
@click.option("--tenant")
@click.option("--request-id")
@click.option("--ticket")
@click.option("--actor")
@click.option("--event-type", help="Exact type, or a family such as 'review.*'.")
@click.option("--action")
@click.option("--after-id", type=click.IntRange(min=0), help="Keyset pagination: events after this id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row (payload as JSON).")
@click.pass_context
def query(ctx: click.Context, as_json: bool, as_csv: bool, **filters: Any) -> None:
    """List audit events matching every filter, oldest first."""
    from gateway.audit import query as query_events
    from gateway.errors import InvalidArgument
    from gateway.timewindow import check_window

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    try:
        check_window(filters["since"], filters["until"])
    except InvalidArgument as exc:
        raise click.UsageError(f"--{exc}") from None
    with open_session(ctx) as session:
        rows = [_row(e) for e in query_events(session=session, **filters)]

    if as_json:
        for row in rows:
            click.echo(json_line(row))
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(c, row[c]) for c in COLUMNS])
        # color=True: click.echo would otherwise strip ANSI sequences off a non-terminal, and CSV is
        # the exact data (quoted, so a newline in a value is no new row); a terminal is no CSV reader.
        click.echo(buffer.getvalue(), nl=False, color=True)
    else:
        for row in rows:
            fields = [str(row["id"]), row["created_at"], row["event_type"], row["actor"]]
            fields += [
                f"{k}={row[k]}" for k in ("tenant", "request_id", "ticket", "action") if row[k] is not None
            ]
            click.echo("  ".join(printable(f) for f in fields))
        if not rows:
            click.echo("no matching events", err=True)
    if len(rows) == filters["limit"]:
        click.echo(f"(more may follow: --after-id {rows[-1]['id']})", err=True)
