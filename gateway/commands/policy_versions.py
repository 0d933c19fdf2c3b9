"""`modgate policy show / set / history / diff / activate / seed`: policies versioned in the database.

`set` stores a version without serving it; `activate` serves it on every replica within
`policy_refresh_s`, without a restart. Both are audited with the operator as actor (`cli:USER`).
docs/moderation.md, "Policies in the database".
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from gateway.commands.db import cli_actor, open_session


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _row(info: Any) -> dict[str, Any]:
    return {
        "version": info.version,
        "name": info.name,
        "active": info.active,
        "created_by": info.created_by,
        "created_at": _iso(info.created_at),
        "activated_revision": info.activated_revision,
        "activated_by": info.activated_by,
        "activated_at": _iso(info.activated_at),
        "policy": info.body,
    }


@click.command(name="show")
@click.argument("name", required=False)
@click.option("--version", "version", type=int, help="This stored version instead of the served one.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@click.pass_context
def show_command(ctx: click.Context, name: str | None, version: int | None, as_json: bool) -> None:
    """The served version of every stored policy (or of NAME), as a policy file (TOML) that `policy set`
    reads back."""
    from gateway.policies.render import to_toml
    from gateway.policies.store import active_set, get_version, served_infos

    with open_session(ctx) as session:
        if version is not None:
            infos = [get_version(session=session, version=version)]
        else:
            served = active_set(session=session)
            if name is not None and name not in served.versions:
                raise click.ClickException(f"no stored policy {name!r}")
            every = served_infos(session=session, served=served)
            infos = [every[name]] if name is not None else list(every.values())
    if as_json:
        for info in infos:
            click.echo(json.dumps(_row(info)))
        return
    if not infos:
        click.echo("no stored policies (the presets only)", err=True)
    for info in infos:
        state = "served" if info.active else "not served"
        click.echo(f"# {info.name} v{info.version} ({state}; by {info.created_by}, {_iso(info.created_at)})")
        click.echo(to_toml(info.body))


@click.command(name="set")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def set_command(ctx: click.Context, name: str, file: str) -> None:
    """Store FILE as a new version of policy NAME (checked like [moderation.policies.NAME] in the config
    file). It is not served until `modgate policy activate VERSION`."""
    from gateway.policies.store import set_version
    from moderation.backtest import table_from_toml
    from moderation.config import ModerationConfigError

    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the policy file {file}: {exc}") from None
    try:
        table = table_from_toml(text)
    except ModerationConfigError as exc:
        raise click.UsageError(f"{file}: {exc}") from None
    with open_session(ctx) as session:
        info = set_version(session=session, name=name, table=table, actor=cli_actor())
    click.echo(f"stored {info.name} v{info.version}; serve it with `modgate policy activate {info.version}`")


@click.command(name="history")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def history_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Every stored version (of NAME), oldest first: who stored it and when, who last activated it, and
    which are served."""
    from gateway.policies.store import history

    with open_session(ctx) as session:
        infos = history(session=session, name=name)
    if as_json:
        for info in infos:
            click.echo(json.dumps(_row(info)))
        return
    if not infos:
        click.echo("no stored policy versions", err=True)
    for info in infos:
        served = "*" if info.active else " "
        activated = (
            f"activated r{info.activated_revision} by {info.activated_by} {_iso(info.activated_at)}"
            if info.activated_revision is not None
            else "never activated"
        )
        click.echo(
            f"{served} v{info.version:<5} {info.name:<20} stored by {info.created_by} "
            f"{_iso(info.created_at)}; {activated}"
        )


@click.command(name="diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.pass_context
def diff_command(ctx: click.Context, a: int, b: int) -> None:
    """What changed from stored version A to version B (a unified diff of their policy files)."""
    from gateway.policies.render import diff_versions
    from gateway.policies.store import get_version

    with open_session(ctx) as session:
        first, second = get_version(session=session, version=a), get_version(session=session, version=b)
    text = diff_versions(first, second)
    click.echo(text if text else f"v{a} and v{b} are the same policy table", nl=not text)


@click.command(name="activate")
@click.argument("version", type=int)
@click.pass_context
def activate_command(ctx: click.Context, version: int) -> None:
    """Serve stored VERSION for its policy from now on: every replica picks it up within
    `policy_refresh_s`. Audited (`policy.activated`)."""
    from gateway.policies.store import activate

    with open_session(ctx) as session:
        revision, info = activate(session=session, version=version, actor=cli_actor())
    click.echo(f"{info.name} v{info.version} is served from revision {revision}")


@click.command(name="seed")
@click.pass_context
def seed_command(ctx: click.Context) -> None:
    """Store the config file's [moderation.policies] as the first versions, if nothing was ever stored
    (what the first `modgate serve` does too)."""
    from gateway.commands.settings import command_settings
    from gateway.pipeline.moderation_setup import moderation_config
    from gateway.policies.startup import SEED_ACTOR
    from gateway.policies.store import seed

    tables = moderation_config(command_settings(ctx)).get("policies", {})
    with open_session(ctx) as session:
        revision = seed(session=session, tables=tables, actor=SEED_ACTOR)
    if revision is None:
        click.echo("already seeded: the database holds the policies (see `modgate policy history`)", err=True)
    else:
        click.echo(f"stored {len(tables)} policies from the config file as revision {revision}")


COMMANDS = (show_command, set_command, history_command, diff_command, activate_command, seed_command)
