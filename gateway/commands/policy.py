"""`modgate policy report`: what reviewers' verdicts say about the policies' thresholds."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.commands.db import database_url_option, open_session, store_database_url


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not an ISO date or time: {value!r}", param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group(name="policy")
@database_url_option
@click.pass_context
def policy_group(ctx: click.Context, database_url: str | None) -> None:
    """Moderation policies: versions stored in the database (show, set, history, diff, activate, seed),
    and measured against reviewer verdicts (report, backtest)."""
    store_database_url(ctx, database_url)


@policy_group.command()
@click.option("--since", help="Only outputs created at or after this ISO date/time (UTC if no zone).")
@click.option("--until", help="Only outputs created before this ISO date/time.")
@click.option("--tenant", help="Only this tenant's outputs.")
@click.option(
    "--target-rate",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Largest acceptable share of rejected text among what a suggested threshold would release.",
)
@click.option(
    "--edited-counts-as-rejected", is_flag=True, help="Treat edits as 'should not have been released'."
)
@click.option(
    "--svg", "svg_file", type=click.Path(dir_okay=False, writable=True), help="Also write the plot here."
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON instead of a table.")
@click.pass_context
def report(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    tenant: str | None,
    target_rate: float,
    edited_counts_as_rejected: bool,
    svg_file: str | None,
    as_json: bool,
) -> None:
    """Per policy and category: how many outputs were held, the share reviewers approved unchanged
    (false holds), edited or rejected, the score distributions, and a suggested hold threshold; and
    from the QA sample of released outputs, the miss rate (share judged harmful, Wilson interval)."""
    from gateway.commands.settings import command_settings
    from gateway.policies.store import served_policies
    from gateway.review.qa import QaConfigError, parse_qa
    from gateway.review.report_data import qa_labels, rated_items, reviewed_outputs
    from moderation.config import ModerationConfigError
    from moderation.report import build_report
    from moderation.report_render import format_table, render_svg

    settings = command_settings(ctx)
    try:
        qa_rates = parse_qa(dict(settings.review).get("qa", {}))
    except QaConfigError as exc:
        raise click.UsageError(str(exc)) from None
    window_since, window_until = _when(since, "--since"), _when(until, "--until")
    with open_session(ctx) as session:
        try:  # the stored policies once the database holds them (docs/moderation.md)
            policies = served_policies(session=session, tables=dict(settings.moderation).get("policies", {}))
        except ModerationConfigError as exc:
            raise click.UsageError(str(exc)) from None
        outputs = reviewed_outputs(session=session, since=window_since, until=window_until, tenant=tenant)
        labels = qa_labels(session=session, since=window_since, until=window_until, tenant=tenant)
        result = build_report(
            list(outputs),
            target_rate=target_rate,
            policies=policies,
            edited_counts_as_rejected=edited_counts_as_rejected,
            rated=rated_items(session=session, since=window_since, until=window_until, tenant=tenant),
            qa_labels=list(labels),
            qa_policies=qa_rates,
        )
    if svg_file:
        Path(svg_file).write_text(render_svg(result), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(_plain(result), indent=2))
    else:
        click.echo(format_table(result))


def _plain(value: Any) -> Any:
    """The report as JSON-ready data (its dataclasses hold read-only mappings, which asdict cannot copy)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value
