"""`--config` on every command that reads settings, and the one way a command gets its settings.

Every command reads the same settings as `modgate serve` (TOML file < `MODGATE_*` environment < its own
flags), so `modgate db upgrade --config F` migrates the database that `modgate serve --config F` uses.
`--config` may be given on any level (`modgate --config F db upgrade`, `modgate db --config F upgrade`,
`modgate db upgrade --config F`): the innermost wins; without it, `MODGATE_CONFIG` names the file.
"""

from __future__ import annotations

from typing import Any

import click

from gateway.config import Settings, SettingsError, load_settings

CONFIG_META_KEY = "modgate.config_file"
CONFIG_HELP = "TOML settings file (default: $MODGATE_CONFIG); the same file `modgate serve` reads."


def _remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # ctx.meta is shared by a command and all its parent groups, so a later (inner) --config wins.
    if value is not None:
        ctx.meta[CONFIG_META_KEY] = value


def config_param() -> click.Option:
    return click.Option(
        ["--config"],
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_remember,
        metavar="FILE",
        help=CONFIG_HELP,
    )


def accept_config(command: click.Command) -> None:
    """Adds `--config` to `command` and, for a group, to every command below it."""
    if not any("--config" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(config_param())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_config(sub)


def config_file(ctx: click.Context) -> str | None:
    return ctx.meta.get(CONFIG_META_KEY)


def command_settings(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings for this command: file (from --config or MODGATE_CONFIG) < environment < `overrides`
    (its flags; None means "not given"). A bad setting is a usage error (exit 2) naming it."""
    try:
        return load_settings(config_file(ctx), overrides=overrides)
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None
