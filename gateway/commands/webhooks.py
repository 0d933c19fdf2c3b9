"""`modgate webhooks`: tenants' webhook endpoints (add prints the secret once), and the outbox's dead
events (list, redeliver). docs/operations.md, "Webhooks"."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from gateway.commands.db import cli_actor, database_url_option, open_session, store_database_url


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@click.group(name="webhooks")
@database_url_option
@click.pass_context
def webhooks_group(ctx: click.Context, database_url: str | None) -> None:
    """Webhook endpoints of tenants, and events the gateway gave up delivering."""
    store_database_url(ctx, database_url)


@webhooks_group.command()
@click.option("--tenant", required=True, help="The tenant whose events go to the endpoint.")
@click.option("--url", required=True, help="http(s) URL the events are POSTed to.")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    help="An event type to send (output.held, output.blocked, review.decided, appeal.opened, "
    "appeal.decided, review.deadline_passed); repeat for several.",
)
@click.pass_context
def add(ctx: click.Context, tenant: str, url: str, events: tuple[str, ...]) -> None:
    """Register an endpoint and print its signing secret: it is shown only this once."""
    from gateway.webhooks.endpoints import create_endpoint

    with open_session(ctx) as session:
        endpoint, secret = create_endpoint(
            session=session, tenant=tenant, url=url, events=events, actor=cli_actor()
        )
        endpoint_id, chosen = endpoint.id, list(endpoint.events)
    click.echo(f"added webhook endpoint {endpoint_id} for tenant {tenant}: {', '.join(chosen)}", err=True)
    click.echo("store the signing secret now, it cannot be shown again:", err=True)
    click.echo(secret)


@webhooks_group.command(name="list")
@click.option("--tenant", help="Only this tenant's endpoints.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List endpoints: id, tenant, URL, events (never the secrets)."""
    from gateway.webhooks.endpoints import list_endpoints

    with open_session(ctx) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": e.id,
                "tenant": e.tenant,
                "url": e.url,
                "events": list(e.events),
                "created_at": _iso(e.created_at),
            }
            for e in list_endpoints(session=session, tenant=tenant)
        ]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(f"{row['id']}  {row['tenant']:<16} {row['url']}  {','.join(row['events'])}")
    if not rows and not as_json:
        click.echo("no webhook endpoints", err=True)


@webhooks_group.command()
@click.argument("endpoint_id", metavar="ID")
@click.pass_context
def remove(ctx: click.Context, endpoint_id: str) -> None:
    """Remove endpoint ID; its undelivered events are dropped."""
    from gateway.webhooks.endpoints import remove_endpoint

    with open_session(ctx) as session:
        remove_endpoint(session=session, endpoint_id=endpoint_id, actor=cli_actor())
    click.echo(f"removed webhook endpoint {endpoint_id}")


@webhooks_group.command()
@click.option("--tenant", help="Only this tenant's events.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def dead(ctx: click.Context, tenant: str | None, limit: int, as_json: bool) -> None:
    """List events given up on (dead): delivery id, endpoint, type, ticket, attempts, last error."""
    from gateway.storage.models import DeliveryState
    from gateway.webhooks.outbox import list_deliveries

    with open_session(ctx) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": d.id,
                "event_id": d.event_id,
                "endpoint_id": d.endpoint_id,
                "tenant": d.tenant,
                "type": d.event_type,
                "ticket": d.ticket,
                "attempts": d.attempts,
                "last_error": d.last_error,
                "created_at": _iso(d.created_at),
            }
            for d in list_deliveries(session=session, state=DeliveryState.DEAD, tenant=tenant, limit=limit)
        ]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            click.echo(
                f"{row['id']:>8}  {row['tenant']:<16} {row['type']:<16} {row['ticket']}  "
                f"{row['attempts']} attempts  {row['last_error']}"
            )
    if not rows and not as_json:
        click.echo("no dead webhook events", err=True)


@webhooks_group.command()
@click.argument("delivery_id", metavar="ID", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Every dead event.")
@click.pass_context
def redeliver(ctx: click.Context, delivery_id: int | None, all_dead: bool) -> None:
    """Send dead event ID (a delivery id from `dead`), or --all-dead, again (a fresh give-up clock)."""
    from gateway.webhooks.outbox import redeliver as put_back

    if (delivery_id is None) == (not all_dead):
        raise click.UsageError("give a delivery ID or --all-dead")
    with open_session(ctx) as session:
        count = put_back(session=session, actor=cli_actor(), delivery_id=delivery_id, all_dead=all_dead)
    click.echo(f"{count} webhook event(s) queued for delivery again")
