"""`modgate moderation eval FILE.csv`: how the configured moderation pipeline does on labelled text."""

from __future__ import annotations

import click


@click.group(name="moderation")
def moderation_group() -> None:
    """The moderation pipeline: evaluate it on labelled data."""


@moderation_group.command(name="eval")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--offline-moderation", is_flag=True, default=None, help="Word list + alt-profanity-check only."
)
@click.option("--policy", help="Policy to evaluate (default: the configured default policy).")
@click.option("--show-errors", type=int, default=10, show_default=True, help="Misclassified rows to list.")
@click.pass_context
def eval_(
    ctx: click.Context,
    csv_file: str,
    offline_moderation: bool | None,
    policy: str | None,
    show_errors: int,
) -> None:
    """Precision, recall, F1 and the confusion matrix of the configured scorers and thresholds on CSV_FILE
    (columns text,label; label 1 = must not be released as is, 0 = clean; optional column kind).

    An output counts as flagged when the policy does anything but release it (mask, hold or block)."""
    from gateway.commands.settings import command_settings
    from gateway.pipeline.moderation_setup import ModerationLoadError, load_moderator
    from moderation.evaluation import evaluate_file, format_report
    from moderation.moderator import UnknownPolicyError

    settings = command_settings(ctx, offline_moderation=offline_moderation)
    try:
        moderator = load_moderator(settings)
        report = evaluate_file(moderator, csv_file, policy=policy)
    except (ModerationLoadError, UnknownPolicyError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_report(report, show_errors=show_errors))
