"""`modgate replay TICKET`: re-run a recorded generation and its moderation; say what differs."""

from __future__ import annotations

import asyncio
from typing import Any

import click

EXIT_DIFFERENT = 3


@click.command(name="replay")
@click.argument("ticket")
@click.option(
    "--model", help="Model to replay with (default: the configured one; it should be the recorded one)."
)
@click.option("--database-url", help="SQLAlchemy URL (default: the configured one).")
@click.option(
    "--offline-moderation", is_flag=True, default=None, help="Word list + alt-profanity-check only."
)
@click.pass_context
def replay_command(ctx: click.Context, ticket: str, **overrides: Any) -> None:
    """Regenerate TICKET's output with its recorded model, parameters and seed, re-score it with the
    configured scorers under its recorded policy, and compare text and decision with what was recorded.

    Exit code 0: identical; 3: something differs (listed); 1: the replay could not run."""
    from gateway.commands.db import cli_actor
    from gateway.commands.settings import command_settings
    from gateway.errors import GatewayError
    from gateway.generation.batcher import Batcher
    from gateway.generation.model import ModelLoadError
    from gateway.pipeline.moderation_setup import ModerationLoadError
    from gateway.pipeline.replay import replay
    from gateway.server import StartupError, build_components

    settings = command_settings(ctx, **overrides)
    try:
        components = build_components(settings)
    except (ModelLoadError, ModerationLoadError, StartupError) as exc:
        raise click.ClickException(str(exc)) from None
    batcher = Batcher(components.generator, max_batch_size=1, max_wait_ms=0, max_queue=1)
    try:
        report = asyncio.run(
            replay(
                ticket,
                actor=cli_actor(),
                sessions=components.sessions,
                generator=components.generator,
                batcher=batcher,
                moderator=components.moderator,
            )
        )
    except GatewayError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        batcher.shutdown()
        components.engine.dispose()
    for line in report.lines():
        click.echo(line)
    if not report.identical:
        raise SystemExit(EXIT_DIFFERENT)
