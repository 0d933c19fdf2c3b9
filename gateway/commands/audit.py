"""`modgate audit`: verify the hash chain, query events (table, JSON lines or CSV)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import click

from gateway.commands.db import database_url_option, open_session, store_database_url

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


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    row_id, _, digest = value.partition(":")
    if not row_id.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise click.BadParameter("expected ID:SHA256HEX, as printed by a previous `modgate audit verify`")
    return int(row_id), digest


@click.group(name="audit")
@database_url_option
@click.pass_context
def audit_group(ctx: click.Context, database_url: str | None) -> None:
    """The audit log: verify its hash chain, query its events."""
    store_database_url(ctx, database_url)


@audit_group.command()
@click.option(
    "--anchor", metavar="ID:HASH", help="A head recorded earlier; fails if that row changed or is gone."
)
@click.pass_context
def verify(ctx: click.Context, anchor: str | None) -> None:
    """Check every row's hash and link; exit 1 naming the first bad row."""
    from gateway.audit import verify as verify_chain

    anchor_value = _anchor(anchor)
    with open_session(ctx) as session:
        result = verify_chain(session=session, anchor=anchor_value)
    if not result.ok:
        raise click.ClickException(
            f"audit log TAMPERED at row {result.first_bad_id}: {result.problem} "
            f"({result.checked} rows verified before it)"
        )
    if result.head_id is None:
        click.echo("audit log OK: empty")
    else:
        click.echo(f"audit log OK: {result.checked} rows; head {result.head_id}:{result.head_hash}")


def _csv_cell(column: str, value: Any) -> Any:
    """Payload as JSON; client-influenced text that a spreadsheet would run as a formula gets a ``'``
    prefix (OWASP "CSV injection": request ids and actors can come from API clients)."""
    if column == "payload":
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


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

    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    if filters["since"] and filters["until"] and filters["since"] >= filters["until"]:
        raise click.UsageError("--since must be before --until")
    with open_session(ctx) as session:
        rows = [_row(e) for e in query_events(session=session, **filters)]

    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
    elif as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_cell(c, row[c]) for c in COLUMNS])
        click.echo(buffer.getvalue(), nl=False)
    else:
        for row in rows:
            fields = [str(row["id"]), row["created_at"], row["event_type"], row["actor"]]
            fields += [
                f"{k}={row[k]}" for k in ("tenant", "request_id", "ticket", "action") if row[k] is not None
            ]
            click.echo("  ".join(fields))
        if not rows:
            click.echo("no matching events", err=True)
    if len(rows) == filters["limit"]:
        click.echo(f"(more may follow: --after-id {rows[-1]['id']})", err=True)
