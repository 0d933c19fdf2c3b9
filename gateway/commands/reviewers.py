"""`modgate reviewers`: add, list and disable the humans who work the review queue."""

from __future__ import annotations

import json
import sys

import click

from gateway.commands.db import cli_actor, database_url_option, open_session, store_database_url


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
            session=session, username=username, password=password, role=role, actor=cli_actor()
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
    """Disable USERNAME; items they had claimed go back to the queue."""
    from gateway.review import disable_reviewer

    with open_session(ctx) as session:
        disable_reviewer(session=session, username=username, actor=cli_actor())
    click.echo(f"disabled {username}")
