"""A real gateway per moderation policy, sharing one loaded demo model and one migrated database.

Moderation outcomes are made deterministic without touching the model: the test finds a word that the
demo model really generates for a fixed prompt and seed, and configures the word list to flag it. The
policy then decides mask, hold or block for that real output, through the real server path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.config import Settings
from gateway.generation.generator import Generator
from gateway.generation.model import load_model
from gateway.generation.params import Limits, RawParams, resolve
from gateway.pipeline.recording import Recorder
from gateway.server import Components, qa_sample_rates
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.policy import Policy
from moderation.scorers.profanity import ProfanityScorer
from moderation.types import Action
from tests.integration.gateway_harness import ServerThread

PROMPT = "The meaning of life is"
FLAG_SEED = 11
FLAG_TOKENS = 24


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'modgate.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def generator(demo_model_dir: Path) -> Generator:
    # MODGATE_TEST_DEVICE=cuda runs the same tests on a GPU (CI has none; see docs/benchmarks.md).
    device = os.environ.get("MODGATE_TEST_DEVICE", "cpu")
    return Generator(load_model(str(demo_model_dir), revision=None, device=device, dtype="float32"))


@pytest.fixture(scope="session")
def flag_word(generator: Generator) -> str:
    """A whole word (letters only, 3+) that the demo model generates for PROMPT with FLAG_SEED."""
    params = resolve(RawParams(seed=FLAG_SEED, max_new_tokens=FLAG_TOKENS), Limits())
    (seq,) = generator.generate(PROMPT, params, should_stop=lambda: False)
    words = [w for w in re.split(r"\s+", seq.text) if re.fullmatch(r"[A-Za-z]{3,}", w)]
    assert words, f"the demo model produced no plain word to flag: {seq.text!r}"
    return words[0]


def policy_for(span_action: Action, *, name: str | None = None) -> Policy:
    return Policy(name=name or f"test-{span_action.name.lower()}", span_actions={"profanity": span_action})


def word_moderator(word: str, *policies: Policy, default: Policy | None = None, **options: Any) -> Moderator:
    """A moderator whose only scorer is a word list of `word`, under `policies` (the default policy:
    `default`, else the first); `options` go to `Moderator` (shadow_policies, ...)."""
    return Moderator(
        [ProfanityScorer(builtin_words=False, extra_words=[word])],
        {p.name: p for p in policies},
        default_policy=(default or policies[0]).name,
        masker=Masker(),
        **options,
    )


def gateway_components(
    generator: Generator, moderator: Moderator, engine: Engine, **settings: object
) -> Components:
    """What `build_components` would give, around an already loaded model and a test's own moderator;
    auth is off unless `insecure_no_auth=False` is passed."""
    sessions = make_session_factory(engine)
    built = Settings(
        **{
            "model": generator.model_id,
            "database_url": engine.url.render_as_string(hide_password=False),
            "insecure_no_auth": True,
            # Off unless a test asks: the session's gateways share one database, and one without the
            # approved prompt's policy would take its run and put it off (gateway/pipeline/prompt_worker.py).
            "prompt_runs": False,
            **settings,
        }  # type: ignore[arg-type]
    )
    return Components(
        settings=built,
        generator=generator,
        moderator=moderator,
        engine=engine,
        sessions=sessions,
        recorder=Recorder(sessions, qa_rates=qa_sample_rates(built, moderator)),
    )


@pytest.fixture(scope="session")
def make_gateway(generator: Generator, db_url: str, flag_word: str) -> Iterator[Callable[..., ServerThread]]:
    """Starts a gateway whose word list flags `flag_word` and whose policy does `span_action` with it."""
    engine = make_engine(db_url)
    started: list[ServerThread] = []
    policies = {p.name: p for p in (policy_for(a) for a in (Action.MASK, Action.HOLD, Action.BLOCK))}

    def make(
        span_action: Action = Action.MASK,
        *,
        shadow: tuple[str, ...] = (),
        web: bool = False,
        **settings: object,
    ) -> ServerThread:
        """Auth is off unless the test passes insecure_no_auth=False; API-key tenants can pick any of
        the three policies (test-mask, test-hold, test-block) through the key's policy."""
        moderator = word_moderator(
            flag_word, *policies.values(), default=policy_for(span_action), shadow_policies=shadow
        )
        components = gateway_components(generator, moderator, engine, **settings)
        server = ServerThread(components, web=web).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop(grace=1)
    engine.dispose()


@pytest.fixture(scope="session")
def gateway(make_gateway: Callable[..., ServerThread]) -> ServerThread:
    """The default gateway for these tests: flagged words are masked."""
    return make_gateway(Action.MASK)
