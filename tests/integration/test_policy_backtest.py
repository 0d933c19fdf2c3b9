"""`modgate policy backtest` end to end: a real gateway records outputs under policy `house`, a reviewer
decides the held ones through the Review service, then the CLI evaluates a stricter and a looser
proposal on the recorded scores and prints the hand-computed matrices (tables and `--json` agree)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result

from gateway.api.v1 import review_pb2 as rv_pb
from gateway.api.v1 import review_pb2_grpc as rv_grpc
from gateway.cli import cli
from gateway.client import GatewayClient, action_name
from gateway.generation.generator import Generator
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from moderation.config import build_policies
from moderation.masking import Masker
from moderation.moderator import Moderator
from moderation.types import ScoreResult
from tests.integration.conftest import PROMPT, gateway_components
from tests.integration.gateway_harness import ServerThread
from tests.integration.keys import make_keys

HOUSE = {"thresholds": {"toxicity": {"hold": 0.5, "block": 0.9}}}
# (toxicity the scorer gives, what `house` decides, the reviewer's decision for held ones)
PLAN = [
    (0.10, "RELEASED", None),
    (0.30, "RELEASED", None),
    (0.60, "HELD", rv_pb.REVIEW_DECISION_APPROVE),
    (0.70, "HELD", rv_pb.REVIEW_DECISION_REJECT),
    (0.80, "HELD", rv_pb.REVIEW_DECISION_APPROVE),
    (0.95, "BLOCKED", None),
]
OTHER_POLICY_SCORE = 0.2  # one output under `permissive` (another key's policy): outside `backtest house`

STRICTER = '# a new version of house\nextends = "house"\n[thresholds.toxicity]\nhold = 0.25\nblock = 0.75\n'
LOOSER = 'extends = "house"\nthresholds = { toxicity = { hold = 0.75, block = 0.9 } }\n'


class ScriptedScorer:
    """Toxicity from a script, one value per new text in the order the gateway asks (a text scored again
    gets its first value), so each output's recorded score is known in advance."""

    name = "scripted"
    version = "1"

    def __init__(self, values: Sequence[float]) -> None:
        self._values = list(values)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def score(self, texts: Sequence[str]) -> list[ScoreResult]:
        with self._lock:
            for t in texts:
                if t not in self._seen:
                    self._seen[t] = self._values.pop(0)
            return [ScoreResult(scores={"toxicity": self._seen[t]}) for t in texts]


@pytest.fixture(scope="module")
def recorded(generator: Generator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A database whose outputs were made by a real gateway under `house` and decided by a reviewer."""
    tmp = tmp_path_factory.mktemp("backtest")
    url = f"sqlite:///{tmp / 'modgate.db'}"
    migrate.upgrade(url)
    keys = make_keys(
        url,
        {
            "client": {"tenant": "acme", "scopes": ["generate"], "policy": "house"},
            "loose-client": {"tenant": "acme", "scopes": ["generate"], "policy": "permissive"},
            "rita": {"tenant": "staff", "scopes": ["review"], "reviewer": "rita"},
        },
        reviewers=["rita"],
    )
    policies = build_policies({"house": HOUSE})
    scorer = ScriptedScorer([score for score, _, _ in PLAN] + [OTHER_POLICY_SCORE])
    moderator = Moderator([scorer], policies, default_policy="house", masker=Masker())
    engine = make_engine(url)
    server = ServerThread(gateway_components(generator, moderator, engine, insecure_no_auth=False)).start()
    started = datetime.now(UTC) - timedelta(seconds=1)
    decisions: dict[str, int] = {}
    try:
        with GatewayClient(server.address, api_key=keys["client"]) as client:
            for i, (_, expected, decision) in enumerate(PLAN):
                (out,) = client.generate(PROMPT, max_new_tokens=6, seed=100 + i).outputs
                assert action_name(out.moderation.action) == expected
                if decision is not None:
                    decisions[out.ticket] = decision
        with GatewayClient(server.address, api_key=keys["loose-client"]) as client:
            (out,) = client.generate(PROMPT, max_new_tokens=6, seed=200).outputs
            assert action_name(out.moderation.action) == "RELEASED"
        md = (("authorization", f"Bearer {keys['rita']}"),)
        with grpc.insecure_channel(server.address) as channel:
            stub = rv_grpc.ReviewServiceStub(channel)
            for _ in decisions:
                item = stub.ClaimNext(rv_pb.ClaimNextRequest(lease_seconds=60), metadata=md).item
                stub.Decide(
                    rv_pb.DecideRequest(
                        item_id=item.id,
                        expected_version=item.version,
                        decision=decisions[item.ticket],
                        reason="backtest fixture",
                    ),
                    metadata=md,
                )
    finally:
        server.stop(grace=1)
        engine.dispose()
    config = tmp / "modgate.toml"
    config.write_text(
        f'database_url = "{url}"\n[moderation.policies.house.thresholds.toxicity]\nhold = 0.5\nblock = 0.9\n',
        encoding="utf-8",
    )
    (tmp / "stricter.toml").write_text(STRICTER, encoding="utf-8")
    (tmp / "looser.toml").write_text(LOOSER, encoding="utf-8")
    yield {"dir": tmp, "config": str(config), "since": started.isoformat()}


def run(recorded: dict[str, Any], *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", recorded["config"], "policy", "backtest", *args])


def table_row(text: str, label: str) -> list[int]:
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [label] and len(ln.split()) == 5]
    return [int(n) for n in line.split()[1:]]


def test_a_stricter_proposal(recorded: dict[str, Any]) -> None:
    path = str(recorded["dir"] / "stricter.toml")
    shown = run(recorded, "house", path, "--since", recorded["since"])
    assert shown.exit_code == 0, shown.output
    as_json = run(recorded, "house", path, "--since", recorded["since"], "--json")
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    # hold 0.25 / block 0.75: 0.1 release; 0.3 release -> hold; 0.6, 0.7 hold; 0.8 hold -> block; 0.95 block
    expected = {
        "release": [1, 0, 1, 0],
        "mask": [0, 0, 0, 0],
        "hold": [0, 0, 2, 1],
        "block": [0, 0, 0, 1],
    }
    for recorded_action, row in expected.items():
        assert list(report["matrix"][recorded_action].values()) == row
        assert table_row(shown.output, recorded_action) == row
    assert (report["outputs"], report["changed"], report["stricter"], report["looser"]) == (6, 2, 2, 0)
    assert report["categories"] == [{"category": "toxicity", "stricter": 2, "looser": 0}]
    # approved 0.6 -> hold, approved 0.8 -> block; rejected 0.7 -> hold
    assert report["verdicts"]["approved"] == {"release": 0, "mask": 0, "hold": 1, "block": 1}
    assert report["verdicts"]["rejected"] == {"release": 0, "mask": 0, "hold": 1, "block": 0}
    assert (report["rejected_released"], report["approved_withheld"]) == (0, 2)
    assert table_row(shown.output, "approved") == [0, 0, 1, 1]
    assert "approved outputs it would hold or block: 2" in shown.output
    assert "outputs 6  changed 2  stricter 2  looser 0" in shown.output


def test_a_looser_proposal_releases_a_rejected_output(recorded: dict[str, Any]) -> None:
    path = str(recorded["dir"] / "looser.toml")
    report = json.loads(run(recorded, "house", path, "--since", recorded["since"], "--json").output)
    # hold 0.75: 0.6 (approved) and 0.7 (rejected) would be released; 0.8 (approved) still held
    assert list(report["matrix"]["hold"].values()) == [2, 0, 1, 0]
    assert (report["looser"], report["rejected_released"], report["approved_withheld"]) == (2, 1, 1)
    assert report["categories"] == [{"category": "toxicity", "stricter": 0, "looser": 2}]


def test_without_a_name_every_policy_s_outputs_count_and_filters_apply(recorded: dict[str, Any]) -> None:
    path = str(recorded["dir"] / "looser.toml")
    everything = json.loads(run(recorded, path, "--since", recorded["since"], "--json").output)
    assert everything["outputs"] == 7 and everything["policy"] == "proposal"
    other = json.loads(run(recorded, path, "--since", recorded["since"], "--tenant", "x", "--json").output)
    assert other["outputs"] == 0
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert json.loads(run(recorded, path, "--since", later, "--json").output)["outputs"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("thresholds = [", "not valid TOML"),
        ("[thresholds.toxicity]\nhold = 2\n", "moderation.policies.house.thresholds.toxicity.hold"),
        ('extends = "nope"\n', "moderation.policies.house.extends: unknown policy 'nope'"),
        ("[moderation.policies.house]\n", "moderation.policies.house"),
    ],
)
def test_a_malformed_policy_file_is_a_usage_error(
    recorded: dict[str, Any], content: str, message: str
) -> None:
    bad = recorded["dir"] / "bad.toml"
    bad.write_text(content, encoding="utf-8")
    result = run(recorded, "house", str(bad), "--since", recorded["since"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_bad_arguments_are_usage_errors(recorded: dict[str, Any]) -> None:
    path = str(recorded["dir"] / "looser.toml")
    missing = run(recorded, "house", str(recorded["dir"] / "absent.toml"), "--since", recorded["since"])
    assert missing.exit_code == 2 and "cannot read the policy file" in missing.output
    assert run(recorded, "house", path).exit_code == 2  # --since is required
    backwards = run(recorded, path, "--since", "2026-02-01", "--until", "2026-01-01")
    assert backwards.exit_code == 2 and "must be after --since" in backwards.output
    assert run(recorded, "a", "b", path, "--since", "2026-01-01").exit_code == 2
    assert "not an ISO date" in run(recorded, path, "--since", "yesterday").output
