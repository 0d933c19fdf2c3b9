"""`modgate policy backtest`: what a proposed policy would have decided on past outputs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.commands.db import open_session
from gateway.commands.policy import _plain, _when
from gateway.commands.settings import command_settings


@click.command(name="backtest")
@click.argument("args", nargs=-1, metavar="[NAME] FILE")
@click.option(
    "--since", required=True, help="Only outputs created at or after this ISO date/time (UTC if no zone)."
)
@click.option("--until", help="Only outputs created before this ISO date/time.")
@click.option("--tenant", help="Only this tenant's outputs.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON instead of tables.")
@click.pass_context
def backtest_command(
    ctx: click.Context,
    args: tuple[str, ...],
    since: str,
    until: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """Evaluate the policy in FILE on the recorded scores of past outputs (no regeneration, no
    re-scoring) and compare with what was decided and with reviewers' verdicts.

    FILE holds the keys of one [moderation.policies.NAME] table (extends, thresholds, ...). With NAME,
    the proposal is a new version of policy NAME and only outputs decided under NAME are read; without
    it, every output in the window. Definitions: docs/moderation.md, "Backtest"."""
    from gateway.policies.store import served_policies
    from gateway.review.backtest_data import Window, recorded_outputs, undecided_count
    from moderation.backtest import backtest, format_backtest, proposal_from_toml
    from moderation.config import ModerationConfigError

    if len(args) not in (1, 2):
        raise click.UsageError("expected [NAME] FILE: a policy name (optional) and the policy file")
    name, file = (None, args[0]) if len(args) == 1 else args
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read the policy file {file}: {exc}") from None
    settings = command_settings(ctx)
    with open_session(ctx) as session:
        try:  # `extends` resolves against the stored policies once the database holds them
            known = served_policies(session=session, tables=dict(settings.moderation).get("policies", {}))
        except ModerationConfigError as exc:
            raise click.UsageError(str(exc)) from None
    try:
        proposal = proposal_from_toml(text, name=name or "proposal", known=known)
    except ModerationConfigError as exc:
        raise click.UsageError(f"{file}: {exc}") from None
    window_since, window_until = _when(since, "--since"), _when(until, "--until")
    if window_since is not None and window_until is not None and window_since >= window_until:
        raise click.BadParameter("must be after --since", param_hint="--until")
    window = Window(since=window_since, until=window_until, tenant=tenant, policy=name)
    with open_session(ctx) as session:
        skipped = undecided_count(session=session, window=window)
        result = backtest(
            proposal,
            recorded_outputs(session=session, window=window),
            skipped=skipped,
            scope={"since": since, "until": until, "tenant": tenant, "policy": name},
        )
    if as_json:
        click.echo(json.dumps(_plain(result), indent=2))
    else:
        click.echo(format_backtest(result))
