"""The `modgate` command line: parse, configure logging, then hand over to the library.

Heavy imports (torch, transformers, detoxify) happen inside the commands that need them, so that
`modgate --help` and `modgate generate` start fast.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.commands.settings import accept_config, command_settings, config_param
from gateway.generation.params import SCALAR_PARAMS

F = TypeVar("F", bound=Callable[..., Any])


# Flags spelt otherwise than `--name` / `--no-name` (the established spelling of do_sample).
_FLAG_SPELLING = {"do_sample": ("--sample/--greedy", "Sampling (default) or greedy decoding.")}


def sampling_options(command: F) -> F:
    """One option per sampling parameter (`gateway.generation.params.SCALAR_PARAMS`, named as in the API
    with dashes), and `--stop` (repeatable): a new parameter needs no new line here."""
    command = click.option("--stop", multiple=True, help="Stop sequence (repeatable).")(command)
    for name, kind in reversed(list(SCALAR_PARAMS.items())):
        dashed = name.replace("_", "-")
        if kind is bool:
            flag, help_text = _FLAG_SPELLING.get(name, (f"--{dashed}/--no-{dashed}", None))
            command = click.option(flag, name, default=None, help=help_text)(command)
        else:
            command = click.option(f"--{dashed}", name, type=kind)(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modgate")
def cli() -> None:
    """modgate: a content-moderated generation gateway in front of GPT-Neo."""


@cli.command()
@click.option("--model", help="Hub id (default EleutherAI/gpt-neo-125M) or a local model directory.")
@click.option("--revision", "model_revision", help="Model revision (branch, tag or commit) on the hub.")
@click.option("--grpc-address", help="HOST:PORT to listen on (default 127.0.0.1:50051).")
@click.option("--tls-cert-file", help="PEM certificate (chain) for gRPC TLS; with --tls-key-file.")
@click.option("--tls-key-file", help="PEM private key for gRPC TLS.")
@click.option("--metrics-address", help="HOST:PORT of the Prometheus /metrics endpoint ('' to turn it off).")
@click.option("--web-address", help="HOST:PORT of the reviewer web queue (default 127.0.0.1:8080).")
@click.option("--web/--no-web", "web_enabled", default=None, help="Serve the reviewer web queue (on).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where the models run.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]))
@click.option("--database-url", help="SQLAlchemy URL (default sqlite:///var/modgate.db).")
@click.option("--max-batch-size", type=int, help="Rows generated together in one batch (default 8).")
@click.option("--max-batch-wait-ms", type=float, help="How long an idle worker gathers a batch (default 5).")
@click.option(
    "--offline-moderation",
    is_flag=True,
    default=None,
    help="Score with the word list and alt-profanity-check only (no detoxify weights needed).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    default=None,
    help="Accept calls without an API key (trials only; logged as a warning).",
)
@click.option("--migrate", is_flag=True, help="Upgrade the database schema before starting.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@click.option("--log-format", type=click.Choice(["text", "json"]))
@click.pass_context
def serve(ctx: click.Context, migrate: bool, **overrides: Any) -> None:
    """Run the gateway until SIGTERM/SIGINT (then shut down gracefully)."""
    settings = command_settings(ctx, **overrides)
    from gateway.ops.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    from gateway.generation.model import ModelLoadError
    from gateway.pipeline.moderation_setup import ModerationLoadError
    from gateway.server import StartupError
    from gateway.server import serve as run

    try:
        asyncio.run(run(settings, migrate_schema=migrate))
    except (ModelLoadError, ModerationLoadError, StartupError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("demo-model")
@click.argument("directory", type=click.Path(file_okay=False))
def demo_model(directory: str) -> None:
    """Write a tiny GPT-Neo with RANDOM weights to DIRECTORY, for offline trials and tests."""
    from gateway.generation.demo import write_demo_model

    path = write_demo_model(Path(directory))
    click.echo(f"wrote a demo GPT-Neo with random weights to {path}")
    click.echo(f"serve it with: modgate serve --model {path} --offline-moderation")


@cli.command()
@click.argument("prompts", nargs=-1, required=True)
@click.option(
    "--address",
    envvar="MODGATE_ADDRESS",
    help="The gateway's HOST:PORT [env MODGATE_ADDRESS; default: grpc_address of the settings].",
)
@sampling_options
@click.option("--stream", is_flag=True, help="Stream the released text as it comes (one prompt).")
@click.option("--json", "as_json", is_flag=True, help="Print the full response as JSON.")
@click.option("--timeout", type=float, default=120.0, show_default=True)
@click.option("--api-key", envvar="MODGATE_API_KEY", help="API key (or MODGATE_API_KEY).")
@click.option(
    "--tls-ca-file",
    type=click.Path(exists=True, dir_okay=False),
    envvar="MODGATE_TLS_CA_FILE",
    help="Connect with TLS, trusting this CA (PEM).",
)
@click.pass_context
def generate(
    ctx: click.Context,
    prompts: tuple[str, ...],
    address: str | None,
    stream: bool,
    as_json: bool,
    timeout: float,
    api_key: str | None,
    tls_ca_file: str | None,
    **params: Any,
) -> None:
    """Ask a running gateway to generate from PROMPTS, and print the moderated outcome."""
    import grpc
    from google.protobuf.json_format import MessageToDict

    from gateway.client import GatewayClient, action_name

    if stream and len(prompts) != 1:
        raise click.UsageError("--stream takes exactly one prompt")
    address = address or command_settings(ctx).grpc_address
    try:
        credentials = grpc.ssl_channel_credentials(Path(tls_ca_file).read_bytes()) if tls_ca_file else None
        with GatewayClient(address, timeout=timeout, api_key=api_key, credentials=credentials) as client:
            if stream:
                for message in client.generate_stream(prompts[0], **params):
                    kind = message.WhichOneof("event")
                    if kind == "text":
                        click.echo(message.text, nl=False)
                    elif kind == "final":
                        click.echo()
                        _echo_outcome(message.final, action_name, show_text=False)
                return
            response = client.generate(list(prompts), **params)
    except grpc.RpcError as exc:
        if not isinstance(exc, grpc.Call):  # every RpcError a stub raises is also a Call
            raise click.ClickException(f"call failed: {exc}") from None
        raise click.ClickException(f"{exc.code().name}: {exc.details()}") from None
    if as_json:
        click.echo(json.dumps(MessageToDict(response), indent=2))
        return
    withheld = any(action_name(o.moderation.action) in ("HELD", "BLOCKED") for o in response.outputs)
    seed = "not told: an output was withheld" if withheld else response.seed
    click.echo(f"request {response.request_id} (model {response.model}, seed {seed})", err=True)
    for output in response.outputs:
        _echo_outcome(output, action_name, show_text=True, label=len(response.outputs) > 1)


def _echo_outcome(output: Any, action_name: Any, *, show_text: bool, label: bool = False) -> None:
    action = action_name(output.moderation.action)
    prefix = f"[{output.prompt_index}.{output.sequence_index}] " if label else ""
    if action in ("RELEASED", "MASKED"):
        if show_text:
            click.echo(f"{prefix}{output.text}")
        if action == "MASKED":
            click.echo(f"{prefix}(masked: {_reasons(output)})", err=True)
    elif action == "HELD":
        click.echo(f"{prefix}HELD for human review; ticket {output.ticket} ({_reasons(output)})")
    else:
        click.echo(f"{prefix}BLOCKED ({_reasons(output)})")


def _reasons(output: Any) -> str:
    """Scores for a masked output; a held or blocked one carries only its categories (docs/api.md)."""
    if output.moderation.scores:
        parts = [f"{r.category} {r.score:.2f} >= {r.threshold:.2f}" for r in output.moderation.reasons]
    else:
        parts = [r.category for r in output.moderation.reasons]
    return "; ".join(parts) or "-"


def _register_groups() -> None:
    """Command groups that live beside their subsystems; they import no model code."""
    from gateway.commands.audit import audit_group
    from gateway.commands.db import db_group
    from gateway.commands.keys import keys_group
    from gateway.commands.moderation import moderation_group
    from gateway.commands.policy import policy_group
    from gateway.commands.policy_backtest import backtest_command
    from gateway.commands.policy_versions import COMMANDS as POLICY_VERSION_COMMANDS
    from gateway.commands.replay import replay_command
    from gateway.commands.reviewers import reviewers_group
    from gateway.commands.webhooks import webhooks_group
    from gateway.commands.wordlists import wordlist_group

    policy_group.add_command(backtest_command)
    for command in POLICY_VERSION_COMMANDS:
        policy_group.add_command(command)
    groups = (
        db_group,
        audit_group,
        reviewers_group,
        keys_group,
        moderation_group,
        policy_group,
        webhooks_group,
        wordlist_group,
    )
    for group in groups:
        cli.add_command(group)
    cli.add_command(replay_command)
    # Every command that reads settings takes --config (demo-model reads none).
    for name, command in cli.commands.items():
        if name != "demo-model":
            accept_config(command)
    cli.params.append(config_param())  # `modgate --config FILE COMMAND ...` too


_register_groups()


def main() -> None:
    cli(prog_name="modgate")


if __name__ == "__main__":
    main()
