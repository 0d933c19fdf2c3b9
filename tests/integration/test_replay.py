"""Replay of a seeded generation on the demo model reproduces text and decision exactly; a changed
moderation setup shows up as listed differences; `modgate replay` says so with its exit code."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session

from gateway.audit import events
from gateway.audit.query import query as audit_query
from gateway.cli import cli
from gateway.client import GatewayClient
from gateway.commands.replay import EXIT_DIFFERENT
from gateway.config import load_settings
from gateway.errors import NotFound
from gateway.generation.batcher import Batcher
from gateway.pipeline.replay import replay
from gateway.server import build_components
from gateway.storage.engine import make_engine
from gateway.storage.models import GenerationOutput
from moderation.types import Action
from tests.integration.conftest import FLAG_SEED, FLAG_TOKENS, PROMPT, policy_for, word_moderator
from tests.integration.gateway_harness import ServerThread


@pytest.fixture(scope="module")
def batcher(generator: object) -> Iterator[Batcher]:
    b = Batcher(generator, max_batch_size=1, max_wait_ms=0, max_queue=1)  # type: ignore[arg-type]
    yield b
    b.shutdown()


def test_replay_of_a_held_seeded_output_is_identical(
    make_gateway: Callable[..., ServerThread], batcher: Batcher, flag_word: str
) -> None:
    server = make_gateway(Action.HOLD)
    with GatewayClient(server.address) as client:
        outputs = client.generate([PROMPT, "The garden"], max_new_tokens=FLAG_TOKENS, seed=FLAG_SEED).outputs
    (out,) = [o for o in outputs if o.ticket]  # the output with the flagged word is held
    c = server.components
    run = functools.partial(
        replay, actor="cli:test", sessions=c.sessions, generator=c.generator, batcher=batcher
    )
    report = asyncio.run(run(out.ticket, moderator=c.moderator))
    assert report.identical, report.lines()
    assert report.notes == []

    # The same ticket under a moderator whose word list no longer flags the word: the replay says so.
    lenient = word_moderator("zzz", policy_for(Action.HOLD))
    changed = asyncio.run(run(out.ticket, moderator=lenient))
    assert changed.text_identical and not changed.identical
    assert any(d.startswith("action") for d in changed.decision_differences), changed.decision_differences
    assert flag_word not in " ".join(changed.lines()), "the report never quotes the text"
    with c.sessions() as s:
        replays = audit_query(session=s, ticket=out.ticket, event_type=events.OUTPUT_REPLAYED)
        assert [(e.actor, e.action, e.tenant) for e in replays] == [
            ("cli:test", "identical", "default"),
            ("cli:test", "different", "default"),
        ]

    with pytest.raises(NotFound):
        asyncio.run(run("tkt_nope", moderator=c.moderator))


def test_modgate_replay_command(demo_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "modgate.toml"
    config.write_text(
        f'model = "{demo_model_dir}"\ndatabase_url = "sqlite:///{tmp_path / "r.db"}"\n'
        'offline_moderation = true\n[moderation]\ndefault_policy = "mine"\n'
        '[moderation.policies.mine]\nextends = "strict"\n'
    )
    settings = load_settings(config, env={}, overrides={"insecure_no_auth": True})
    server = ServerThread(build_components(settings, migrate_schema=True)).start()
    try:
        with GatewayClient(server.address) as client:
            ticket = client.generate("The garden", max_new_tokens=8, seed=4).outputs[0].ticket
    finally:
        server.stop(grace=1)
    assert ticket, "the strict policy holds everything"
    same = CliRunner().invoke(cli, ["replay", ticket, "--config", str(config)])
    assert same.exit_code == 0, same.output
    assert f"replay of {ticket}: identical" in same.output
    # The operator has since changed policy `mine` (stored and activated; the file is only the seed):
    # the replay rebuilds the version the decision was made under, and says so.
    changed = tmp_path / "mine.toml"
    changed.write_text('extends = "permissive"\n')
    assert (
        CliRunner().invoke(cli, ["policy", "--config", str(config), "set", "mine", str(changed)]).exit_code
        == 0
    )
    assert CliRunner().invoke(cli, ["policy", "--config", str(config), "activate", "2"]).exit_code == 0
    other = CliRunner().invoke(cli, ["replay", ticket, "--config", str(config)])
    assert other.exit_code == 0, other.output
    assert "identical" in other.output and "replayed at its recorded version" in other.output
    # A decision whose recorded version the database never held (here: edited in the row) is replayed
    # under the served version, and the replay lists the difference.
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with Session(engine) as s, s.begin():
        s.execute(
            update(GenerationOutput).where(GenerationOutput.ticket == ticket).values(policy_version="0" * 12)
        )
    engine.dispose()
    different = CliRunner().invoke(cli, ["replay", ticket, "--config", str(config)])
    assert different.exit_code == EXIT_DIFFERENT, different.output
    assert "DIFFERENT" in different.output and "policy_version" in different.output
    assert "is not stored; replayed under the served version" in different.output
    missing = CliRunner().invoke(cli, ["replay", "tkt_missing", "--config", str(config)])
    assert missing.exit_code == 1 and "no output with ticket" in missing.output
