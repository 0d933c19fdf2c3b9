"""`modgate keys`: create (the secret is printed once), list and revoke client API keys."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from gateway.commands.db import cli_actor, database_url_option, open_session, store_database_url


@click.group(name="keys")
@database_url_option
@click.pass_context
def keys_group(ctx: click.Context, database_url: str | None) -> None:
    """Client API keys (sent by clients in gRPC metadata)."""
    store_database_url(ctx, database_url)


@keys_group.command()
@click.option("--tenant", required=True, help="The tenant the key belongs to.")
@click.option("--name", required=True, help="A label for people (e.g. 'batch jobs').")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope to grant (generate, review, audit: its own tenant's events, audit:all: every "
    "tenant's, for operators, policy: the Policy and WordList services, for operators); repeat for "
    "several.",
)
@click.option("--policy", help="Moderation policy for this key (default: the gateway's default policy).")
@click.option("--reviewer", help="With --scope review: the reviewer account (username) the key acts as.")
@click.option("--requests-per-minute", type=int, help="Rate limit (0: unlimited; default: the gateway's).")
@click.option(
    "--tokens-per-minute", type=int, help="Generated-token quota (0: unlimited; default: the gateway's)."
)
@click.pass_context
def create(
    ctx: click.Context,
    tenant: str,
    name: str,
    scopes: tuple[str, ...],
    policy: str | None,
    reviewer: str | None,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
) -> None:
    """Create a key and print its secret: it is shown only this once."""
    from gateway.storage.apikeys import create_key

    with open_session(ctx) as session:
        key, secret = create_key(
            session=session,
            tenant=tenant,
            name=name,
            scopes=scopes,
            policy=policy,
            reviewer=reviewer,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            actor=cli_actor(),
        )
        key_id, prefix = key.id, key.key_prefix
    click.echo(f"created key {key_id} (prefix {prefix}) for tenant {tenant}", err=True)
    click.echo("store the secret now, it cannot be shown again:", err=True)
    click.echo(secret)


@keys_group.command(name="list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_(ctx: click.Context, tenant: str | None, active: bool, as_json: bool) -> None:
    """List keys: id, prefix, tenant, name, scopes, state (never secrets or hashes)."""
    from gateway.storage.apikeys import list_keys

    def iso(value: datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value is not None else None

    with open_session(ctx) as session:
        rows: list[dict[str, Any]] = [
            {
                "id": k.id,
                "prefix": k.key_prefix,
                "tenant": k.tenant,
                "name": k.name,
                "scopes": list(k.scopes),
                "policy": k.policy,
                "created_at": iso(k.created_at),
                "last_used_at": iso(k.last_used_at),
                "revoked_at": iso(k.revoked_at),
            }
            for k in list_keys(session=session, tenant=tenant, include_revoked=not active)
        ]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
            scopes = ",".join(row["scopes"]) or "-"
            click.echo(
                f"{row['id']}  mg_{row['prefix']}_…  {row['tenant']:<16} {row['name']:<20} {scopes:<20} "
                f"{row['policy'] or '-':<12} {state}"
            )
    if not rows and not as_json:
        click.echo("no keys", err=True)


@keys_group.command()
@click.argument("key_id", metavar="ID")
@click.pass_context
def revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke key ID (its id or its prefix); requests with it fail from now on."""
    from gateway.storage.apikeys import revoke_key

    with open_session(ctx) as session:
        key = revoke_key(session=session, key_id=key_id, actor=cli_actor())
        revoked_at = key.revoked_at
    click.echo(f"revoked {key_id} at {revoked_at.isoformat(timespec='seconds') if revoked_at else '?'}")
