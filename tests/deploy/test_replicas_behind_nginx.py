"""Three real replicas on one PostgreSQL database behind nginx (deploy/nginx/modgate.conf), under load:
a `kill -9` of one replica with a restart, then a rolling restart. The numbers printed here are the ones
in docs/deployment.md ("Tested under faults")."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.client import NO_RETRY, GatewayClient, action_name
from gateway.ops.maintenance import INTERRUPTED
from gateway.storage import make_engine, migrate
from gateway.storage.models import GenerationRequest, ModerationAction, RequestStatus, ReviewState
from tests.deploy.cluster import MODGATE, Replica, create_key, make_replicas, wait_until, write_config
from tests.deploy.nginx import NGINX, Nginx
from tests.support.pg import PostgresServer
from tests.support.serve_process import free_ports

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPLICAS = 3
CLIENTS = 6
# The kill comes once this many calls were answered (every replica has taken calls by then); the clients
# call until the scenario ends, so calls are always in flight, on the victim too, when it dies.
KILL_AFTER = 4 * CLIENTS
BACK_IN_S = 60  # a restarted replica answers a call through nginx within this (nginx's fail_timeout: 5 s)
PROMPTS = ["The meaning of life is", "The garden"]
STALE_REQUEST_S = 10  # longer than any call here takes, so the sweep never fails a live request
RATE_LIMIT = 10  # requests per minute for the rate-limited key
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass
class Cluster:
    url: str
    config: Path
    replicas: list[Replica]
    nginx: Nginx
    api_key: str
    limited_key: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.nginx.grpc_port}"


@pytest.fixture(scope="module")
def cluster(
    pg_server: PostgresServer, demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: apt-get install -y nginx (Debian's package)")
    directory = tmp_path_factory.mktemp("cluster")
    url = pg_server.url_for(pg_server.create())  # empty: the replicas migrate it, all starting at once
    config = write_config(directory / "modgate.toml", url)
    env = {
        "MODGATE_STALE_REQUEST_S": str(STALE_REQUEST_S),
        "MODGATE_MAINTENANCE_INTERVAL_S": "0.5",
        "MODGATE_GRACE_PERIOD_S": "20",
    }
    replicas = make_replicas(REPLICAS, model_dir=demo_model_dir, config=config, directory=directory, env=env)
    grpc_port, web_port = free_ports(2)
    nginx = Nginx(directory / "nginx", grpc_port=grpc_port, web_port=web_port)
    nginx.write(grpc=[r.address for r in replicas], web=[f"127.0.0.1:{r.web_port}" for r in replicas])
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_serving()
        assert migrate.current(url) == migrate.head()
        nginx.start()
        yield Cluster(
            url,
            config,
            replicas,
            nginx,
            api_key=create_key(config, name="load"),
            limited_key=create_key(config, name="limited", requests_per_minute=RATE_LIMIT),
        )
    finally:
        nginx.stop()
        for replica in replicas:
            replica.stop()


@dataclass
class Load:
    """CLIENTS threads calling through nginx with the gateway's client until stopped: `raw` of them
    never retry, so that the statuses of the calls a fault cut off are seen as they are."""

    address: str
    api_key: str
    tag: str
    raw: int = 0
    answered: dict[str, object] = field(default_factory=dict)
    errors: dict[str, grpc.StatusCode] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, n: int) -> None:
        retry = NO_RETRY if n < self.raw else None
        with GatewayClient(self.address, api_key=self.api_key, timeout=90, retry=retry) as client:
            k = 0
            while not self._stop.is_set():
                rid = f"{self.tag}-{'raw' if n < self.raw else 'retrying'}{n}-{k}"
                k += 1
                try:
                    response = client.generate(PROMPTS, max_new_tokens=16, seed=n * 1000 + k, request_id=rid)
                    with self._lock:
                        self.answered[rid] = response
                except grpc.RpcError as exc:
                    with self._lock:
                        self.errors[rid] = (
                            exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                        )

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(CLIENTS)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)

    def calls(self) -> int:
        return len(self.answered) + len(self.errors)


def _open_rows(url: str, tag: str) -> int:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return len(
                s.scalars(
                    select(GenerationRequest.id).where(
                        GenerationRequest.request_id.startswith(tag),
                        GenerationRequest.status.in_((RequestStatus.RECEIVED, RequestStatus.GENERATING)),
                    )
                ).all()
            )
    finally:
        engine.dispose()


def check_records(cluster: Cluster, load: Load) -> dict[str, int]:
    """Every call the gateway recorded has one outcome; what each client got matches the record; no
    withheld text reached a client; held outputs are queued for review. Returns the counts."""
    swept_s = wait_until(
        lambda: _open_rows(cluster.url, load.tag) == 0, 60, "the sweep to resolve open requests"
    )
    issued = set(load.answered) | set(load.errors)
    engine = make_engine(cluster.url)
    stats: Counter[str] = Counter()
    try:
        with Session(engine) as s:
            rows = s.scalars(
                select(GenerationRequest)
                .where(GenerationRequest.request_id.startswith(load.tag))
                .options(selectinload(GenerationRequest.outputs))
            ).all()
            by_rid: dict[str, list[GenerationRequest]] = {}
            for row in rows:
                assert row.request_id in issued, f"a record no client call made: {row.request_id}"
                by_rid.setdefault(row.request_id, []).append(row)
                stats[f"records {row.status.value}"] += 1
                if row.status == RequestStatus.FAILED:
                    assert row.error == INTERRUPTED, row.error
                else:
                    assert row.status == RequestStatus.COMPLETED, (row.request_id, row.status)
            for rid, response in load.answered.items():
                completed = [r for r in by_rid.get(rid, []) if r.status == RequestStatus.COMPLETED]
                assert len(completed) == 1, f"{rid}: {len(completed)} completed records for one answer"
                outputs = {(o.prompt_index, o.sequence_index): o for o in completed[0].outputs}
                got = list(response.outputs)  # type: ignore[attr-defined]
                assert len(got) == len(outputs) == len(PROMPTS)
                for out in got:
                    record = outputs[(out.prompt_index, out.sequence_index)]
                    action = action_name(out.moderation.action)
                    if record.action in (ModerationAction.HOLD, ModerationAction.BLOCK):
                        stats["outputs withheld"] += 1
                        assert action in ("HELD", "BLOCKED") and out.text == "", f"{rid}: withheld text sent"
                        assert record.generated_text not in ("",) and record.generated_text not in out.text
                        assert out.ticket == record.ticket
                        item = record.review_item
                        assert item is not None and item.state == ReviewState.PENDING, f"{rid}: not queued"
                    else:
                        stats["outputs released"] += 1
                        assert out.text == record.released_text
            # A call a client lost was never answered: its record is an interrupted one, or it has none
            # (the replica died after nginx forwarded the call and before it was recorded).
            unrecorded = [rid for rid in load.errors if rid not in by_rid]
            for rid in set(load.errors) - set(unrecorded):
                assert all(r.status == RequestStatus.FAILED for r in by_rid[rid]), (rid, by_rid[rid])
            stats["client errors with an interrupted record"] = len(load.errors) - len(unrecorded)
            stats["client errors with no record (cut off before it was recorded)"] = len(unrecorded)
            lost = sorted(
                rid for rid, rs in by_rid.items() if any(r.status == RequestStatus.FAILED for r in rs)
            )
            stats["request ids with a lost attempt"] = len(lost)
            stats["raw (never retried) request ids with a lost attempt"] = sum(
                1 for rid in lost if "-raw" in rid
            )
    finally:
        engine.dispose()
    stats["calls"] = len(issued)
    stats["calls answered"] = len(load.answered)
    stats["calls answered, never-retrying clients"] = sum(1 for rid in load.answered if "-raw" in rid)
    stats["calls failed after retries"] = len(load.errors)
    stats["seconds until no open record"] = round(swept_s)
    for code, n in Counter(c.name for c in load.errors.values()).items():
        stats[f"client status {code}"] = n
    return dict(stats)


def _audit_verify(cluster: Cluster) -> str:
    result = subprocess.run(
        [MODGATE, "audit", "verify", "--config", str(cluster.config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _by_replica(cluster: Cluster, spread: dict[str, int]) -> list[int]:
    return [spread.get(r.address, 0) for r in cluster.replicas]


def _answered_by(cluster: Cluster, replica: Replica) -> int:
    return cluster.nginx.upstream_counts().get(replica.address, 0)


def _wait_back(cluster: Cluster, replica: Replica) -> float:
    """After `replica` restarted and its health says SERVING: until it answers a call through nginx
    (counted from now, so that calls it answered before it went down do not count). Returns seconds."""
    restarted = _answered_by(cluster, replica)
    return wait_until(
        lambda: _answered_by(cluster, replica) > restarted,
        BACK_IN_S,
        f"replica {replica.index} to answer a call through nginx after its restart",
    )


def _report(title: str, stats: dict[str, object]) -> None:
    print(f"\n== {title}")
    for key, value in stats.items():
        print(f"   {key}: {value}")


def test_kill_9_one_replica_under_load_then_restart(cluster: Cluster) -> None:
    victim = cluster.replicas[0]
    before = cluster.nginx.upstream_counts()
    with Load(cluster.address, cluster.api_key, tag="kill", raw=CLIENTS // 2) as load:
        wait_until(
            lambda: len(load.answered) >= KILL_AFTER or len(load.errors) >= KILL_AFTER,
            180,
            f"{KILL_AFTER} answered calls",
        )
        assert len(load.answered) >= KILL_AFTER, f"the load does not get going: {load.errors}"
        killed_after = load.calls()
        answered_before_kill = _answered_by(cluster, victim) - before.get(victim.address, 0)
        assert answered_before_kill > 0, "premise: the victim takes calls"
        victim.kill9()
        time.sleep(3)  # the other replicas carry the load alone
        victim.start()
        victim.wait_serving()
        back_s = _wait_back(cluster, victim)
    stats = check_records(cluster, load)
    interrupted = (
        stats.get("records failed", 0)
        + stats["client errors with no record (cut off before it was recorded)"]
    )
    assert interrupted > 0, f"premise: the kill cut off no call in flight: {stats}"
    assert set(c for c in load.errors.values()) <= {grpc.StatusCode.UNAVAILABLE}, load.errors
    assert all("-raw" in rid for rid in load.errors), "a retrying client lost a call"
    assert stats.get("outputs withheld", 0) > 0 and stats.get("outputs released", 0) > 0
    verified = _audit_verify(cluster)
    after = cluster.nginx.upstream_counts()
    spread = {a: after.get(a, 0) - before.get(a, 0) for a in after}
    assert all(spread.get(r.address, 0) > 0 for r in cluster.replicas), spread
    _report(
        "kill -9 of one of 3 replicas under load, then a restart",
        {
            **stats,
            "calls before the kill": killed_after,
            "calls the victim answered before the kill": answered_before_kill,
            "seconds from the restarted replica's SERVING to its first call answered through nginx": round(
                back_s, 1
            ),
            "calls answered per replica, through nginx (0 was killed)": _by_replica(cluster, spread),
            "audit": verified,
        },
    )


def test_rolling_restart_under_load_loses_no_call(cluster: Cluster) -> None:
    with Load(cluster.address, cluster.api_key, tag="roll") as load:
        wait_until(lambda: len(load.answered) >= 6 or len(load.errors) >= 6, 120, "the load to get going")
        assert len(load.answered) >= 6, f"the load does not get going: {load.errors}"
        exits, back = [], []
        for replica in cluster.replicas:
            exits.append(replica.terminate())  # drains: calls in flight finish
            replica.start()
            replica.wait_serving()
            back.append(round(_wait_back(cluster, replica), 1))  # before the next one goes down
    stats = check_records(cluster, load)
    assert exits == [0] * REPLICAS
    assert load.errors == {}, f"calls lost in a rolling restart: {load.errors}"
    assert stats.get("records failed", 0) == 0
    verified = _audit_verify(cluster)
    _report(
        "rolling restart (SIGTERM, restart, healthy, answering through nginx, next) of 3 replicas under load",
        {
            **stats,
            "seconds from each restarted replica's SERVING to its first call answered through nginx": back,
            "audit": verified,
        },
    )


def test_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    """One key limited to RATE_LIMIT requests per minute, called through nginx (every replica) at once."""
    before = cluster.nginx.upstream_counts()
    codes: Counter[str] = Counter()
    lock = threading.Lock()
    calls_each = 6

    def caller() -> None:
        with GatewayClient(
            cluster.address, api_key=cluster.limited_key, timeout=60, retry=NO_RETRY
        ) as client:
            for _ in range(calls_each):
                try:
                    client.generate("The garden", max_new_tokens=1)
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name if isinstance(exc, grpc.Call) else "UNKNOWN"
                with lock:
                    codes[code] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=caller) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.monotonic() - started
    after = cluster.nginx.upstream_counts()
    spread = {a: after.get(a, 0) - before.get(a, 0) for a in after}
    refill = int(elapsed * RATE_LIMIT / 60) + 1
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] <= RATE_LIMIT + refill, (codes, elapsed)
    assert codes["OK"] >= RATE_LIMIT
    assert sum(1 for r in cluster.replicas if spread.get(r.address, 0) > 0) >= 2, spread
    _report(
        f"rate limit {RATE_LIMIT}/min on one key, {CLIENTS * calls_each} calls through nginx",
        {
            **dict(codes),
            "seconds": round(elapsed, 1),
            "calls answered per replica, through nginx": _by_replica(cluster, spread),
        },
    )


def test_reviewer_session_is_valid_on_every_replica(cluster: Cluster) -> None:
    """Log in through nginx (any replica), then use the session cookie on each replica directly."""
    password = "a long reviewer password for the replica test"
    created = subprocess.run(
        [MODGATE, "reviewers", "add", "rita", "--password-stdin", "--config", str(cluster.config)],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster.nginx.web_port}", timeout=30) as browser:
        found = CSRF_META.search(browser.get("/login").text)
        assert found, "the login page has no CSRF token"
        token = found.group(1)
        reply = browser.post("/login", data={"username": "rita", "password": password, "csrf_token": token})
        assert reply.status_code == 303, reply.text
        cookies = browser.cookies
    for replica in cluster.replicas:
        base = f"http://127.0.0.1:{replica.web_port}"
        with httpx.Client(base_url=base, cookies=cookies, timeout=30) as logged_in:
            page = logged_in.get("/queue")
            assert page.status_code == 200 and "rita" in page.text, (replica.index, page.status_code)
        with httpx.Client(base_url=base, timeout=30) as stranger:
            assert stranger.get("/queue").status_code in (302, 303), "the queue page needs a login"
    _report("reviewer session", {"replicas that accepted one login": len(cluster.replicas)})
