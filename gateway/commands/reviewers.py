"""`modgate reviewers`: add, list, disable the humans who work the review queue, and set their passwords."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from gateway.commands.db import cli_actor, database_url_option, open_session, store_database_url
from gateway.commands.settings import command_settings

if TYPE_CHECKING:
    from gateway.review.passwords import HashParams


@click.group(name="reviewers")
@database_url_option
@click.pass_context
def reviewers_group(ctx: click.Context, database_url: str | None) -> None:
    """Reviewer accounts for the web review queue."""
    store_database_url(ctx, database_url)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.UsageError("--password-stdin: no password on standard input")
        return password
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _hash_params(ctx: click.Context) -> HashParams:
    """The Argon2id cost from the settings (the same ``password_hash_*`` as the server's)."""
    from gateway.review.passwords import password_params

    return password_params(command_settings(ctx))


@reviewers_group.command()
@click.argument("username")
@click.option("--role", type=click.Choice(["reviewer", "admin"]), default="reviewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def add(ctx: click.Context, username: str, role: str, password_stdin: bool) -> None:
    """Create reviewer USERNAME (prompts for the password unless --password-stdin)."""
    from gateway.review import create_reviewer

    password = _read_password(password_stdin)
    with open_session(ctx) as session:
        reviewer = create_reviewer(
            session=session,
            username=username,
            password=password,
            role=role,
            actor=cli_actor(),
            params=_hash_params(ctx),
        )
        click.echo(f"created {reviewer.role.value} {reviewer.username} ({reviewer.id})")


@reviewers_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List reviewers (never their password hashes)."""
    from gateway.review import list_reviewers

    with open_session(ctx) as session:
        rows = [
            {
                "id": r.id,
                "username": r.username,
                "role": r.role.value,
                "disabled": r.disabled,
                "created_at": r.created_at.isoformat(timespec="seconds"),
            }
            for r in list_reviewers(session=session)
        ]
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
        else:
            state = "disabled" if row["disabled"] else "active"
            click.echo(f"{row['username']:<24} {row['role']:<8} {state:<8} {row['created_at']}  {row['id']}")
    if not rows and not as_json:
        click.echo("no reviewers", err=True)


@reviewers_group.command()
@click.argument("username")
@click.pass_context
def disable(ctx: click.Context, username: str) -> None:
    """Disable USERNAME: their web sessions end, items they had claimed go back to the queue."""
    from gateway.review import disable_reviewer

    with open_session(ctx) as session:
        disable_reviewer(session=session, username=username, actor=cli_actor())
    click.echo(f"disabled {username}")


@reviewers_group.command(name="set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def set_password_(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set USERNAME's password (prompts unless --password-stdin); ends all their web sessions."""
    from gateway.review import set_password

    password = _read_password(password_stdin)
    params = _hash_params(ctx)
    with open_session(ctx) as session:
        set_password(session=session, username=username, password=password, actor=cli_actor(), params=params)
    click.echo(f"password of {username} changed; their web sessions have ended")
