"""One typed settings object, built from a TOML file < `MODGATE_*` environment < CLI flags.

Everything that configures the gateway goes through `load_settings`, so that precedence and validation
live in one place and `serve(settings)` never reads the environment itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "MODGATE_"
DEFAULT_MODEL = "EleutherAI/gpt-neo-125M"
MIN_SESSION_SECRET_CHARS = 32
# Settings that only a command-line flag may set: turning one on must be a visible, deliberate act.
FLAG_ONLY = {"insecure_no_auth": "--insecure-no-auth"}
# TOML tables passed on whole (their own modules read them), not flattened into settings.
WHOLE_TABLES = ("moderation", "review")


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names it."""


@dataclass(frozen=True)
class Settings:
    # Model
    model: str = DEFAULT_MODEL
    model_revision: str | None = None
    device: str = "auto"
    dtype: str = "float32"
    # gRPC server
    grpc_address: str = "127.0.0.1:50051"
    grace_period_s: float = 10.0
    # TLS for gRPC: PEM files. Both or neither; without them the port is plaintext (loopback use).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Reviewer web queue (gateway/web): its own HTTP port, started beside the gRPC server by `serve`.
    web_enabled: bool = True
    web_address: str = "127.0.0.1:8080"
    # Signs reviewers' session cookies (32+ characters; prefer MODGATE_SESSION_SECRET to a config file).
    # None: a random secret per process, logged as a warning: sessions then end when the process
    # restarts and are not shared between replicas. Never a built-in default.
    session_secret: str | None = field(default=None, repr=False)
    # A reviewer's web session ends this long after login whatever the activity, and after this long
    # without a request (docs/operations.md, "Reviewer logins and sessions").
    session_lifetime_s: float = 12 * 3600.0
    session_idle_s: float = 2 * 3600.0
    # Argon2id cost of reviewer passwords. The defaults are OWASP's recommendation (19 MiB, 2 passes,
    # 1 lane); lower values are for tests only (logged as a warning). Stored hashes with other
    # parameters are upgraded at the reviewer's next successful login.
    password_hash_time_cost: int = 2
    password_hash_memory_kib: int = 19_456
    password_hash_parallelism: int = 1
    # The model's name in answers (gRPC `model`, OpenAI `model` and /v1/models). Default: the `model`
    # setting, or for a local directory its last component (a path is the operator's business).
    served_model_name: str | None = None
    # POST /v1/chat/completions: the Jinja template (sandboxed) that writes the messages out as one plain
    # prompt for GPT-Neo, and a stop sequence where the model starts the user's next turn ("" for none).
    # None: the built-in template, docs/api.md.
    chat_template: str | None = None
    chat_stop: str = "\nUser:"
    # Prometheus /metrics endpoint (HOST:PORT); empty to turn it off.
    metrics_address: str = "127.0.0.1:9464"
    # Only for trials and tests: every call acts as tenant "default" (no audit scopes). Logged loudly.
    # Only the `--insecure-no-auth` flag sets it (not the file or the environment, which could turn it
    # on unseen), and only with loopback listening addresses.
    insecure_no_auth: bool = False
    # Request limits
    max_prompts: int = 16
    max_new_tokens_limit: int = 512
    max_return_sequences: int = 8
    max_stop_sequences: int = 8
    max_stop_length: int = 64
    max_prompt_chars: int = 32_000
    default_max_new_tokens: int = 64
    max_queue: int = 64
    # WatchResult: a watch ends after `watch_max_s` with DEADLINE_EXCEEDED (the client watches again), a
    # key holds at most `watch_max_per_key` watches at once on this gateway (RESOURCE_EXHAUSTED past it),
    # and a watch re-checks its key every `watch_recheck_s` (revoked: UNAUTHENTICATED, the watch ends).
    watch_max_s: float = 600.0
    watch_max_per_key: int = 8
    watch_recheck_s: float = 30.0
    # Dynamic batching of generation: at most this many rows (prompts x num_return_sequences) decode
    # together; an idle worker waits this long for more requests before it starts a batch. 32 rather
    # than 8 since round 4 of docs/benchmarks.md: 1.16-1.21x the requests/s at 16 clients, 1.34x at 32 on a
    # 2-core CPU, with the cache bounded by max_batch_tokens instead.
    max_batch_size: int = 32
    max_batch_wait_ms: float = 5.0
    # The KV cache's bound: a request joins a running batch only while rows x the widest row's (prompt
    # + max_new_tokens) stays within this many tokens (~72 KiB of fp32 cache per token for
    # GPT-Neo-125M, ~384 KiB for 1.3B); a larger request runs alone. 0 = rows only.
    max_batch_tokens: int = 8192
    # A prompt joining a running batch is prefilled this many tokens per decoding step, so that a long
    # prompt does not stall the running rows for its whole prefill; 0 = in one pass.
    prefill_chunk: int = 256
    # On a CPU with fp32 weights, run the large Linear layers on oneDNN-prepacked weights: faster
    # decoding steps (1.8-2.4x for batches of 4-16 rows on the project's machine; docs/benchmarks.md).
    cpu_prepack: bool = True
    # With cpu_prepack, inputs of at most this many rows (a decoding step of 1-2 requests) keep the stock
    # kernel: on the Intel host MKL's one- and two-row products beat oneDNN's by 1.3-2x, on both AMD hosts
    # oneDNN won from one row. "auto": 0 on an AMD CPU, 2 otherwise; or a number of rows (0: never).
    # `bench/bench_prepack.py` measures the crossover on the machine it runs on.
    cpu_prepack_stock_rows: str = "auto"
    # When moderation scores on the CPU, the decoder and moderation share the cores by load: while
    # moderation work runs, the decoder uses one core fewer per busy moderation thread; while the
    # decoder is idle, a moderation round uses every core (gateway/generation/threads.py).
    share_cores: bool = True
    # Per-key rate limits, per minute, for keys that do not set their own; 0 means unlimited.
    default_requests_per_minute: int = 0
    default_tokens_per_minute: int = 0
    # Where the rate-limit buckets live: "memory" (this process; each replica counts on its own) or
    # "database" (the rate_buckets table: one limit across every replica on the same database).
    rate_limit_store: str = "memory"
    # Moderation: the `[moderation]` table of the TOML file, handed to `moderation.config.build_moderator`.
    # When empty, the production default (detoxify + word list) applies; `offline_moderation` picks the
    # scorers that need no downloaded weights, and the server announces it.
    moderation: Mapping[str, Any] = field(default_factory=dict)
    offline_moderation: bool = False
    # The `[review]` table, kept whole: `[review.deadlines.POLICY] after_s = 3600, action = "escalate"`
    # (gateway/review/deadlines.py; applied by the maintenance sweep) and `[review.consensus.POLICY]
    # verdicts = 2, rule = "unanimous"` (gateway/review/consensus.py; several reviewers per item), and
    # `[review.qa.POLICY] sample_rate = 0.02`: the share of released outputs drawn for QA labels
    # (gateway/review/qa.py).
    review: Mapping[str, Any] = field(default_factory=dict)
    # Policies live in the database once seeded from `[moderation.policies]` (gateway/policies/); each
    # replica checks the stored revision this often and swaps in a rebuilt moderator when it moved.
    policy_refresh_s: float = 2.0
    # Storage
    database_url: str = "sqlite:///var/modgate.db"
    # A request still open this long after its last update was interrupted (crash): marked failed.
    stale_request_s: float = 900.0
    maintenance_interval_s: float = 30.0
    # Audit anchors (gateway/audit/anchor.py): the HMAC key (32+ characters) that signs the chain's head,
    # from MODGATE_AUDIT_ANCHOR_KEY or a key file, never held by the database. Without it the server
    # makes no anchors and no verify can tell a truncated or rewritten log from an intact one.
    audit_anchor_key: str | None = field(default=None, repr=False)
    audit_anchor_key_file: str | None = None
    # The server appends each anchor it makes here (one line); a restart resumes from the newest.
    audit_anchor_file: str | None = None
    audit_anchor_interval_s: float = 300.0
    # Webhooks (gateway/webhooks, docs/operations.md "Webhooks"): `serve` runs the delivery worker when on.
    # It looks for due events every `webhook_poll_interval_s`; one POST may take `webhook_timeout_s`; a
    # failed one is retried after `webhook_retry_base_s` x 2^(attempts-1) (at most `webhook_retry_max_s`,
    # the second half of each step random), and the event is marked dead once the next try would come
    # more than `webhook_give_up_s` after it was written (or redelivered).
    webhook_delivery: bool = True
    webhook_poll_interval_s: float = 1.0
    webhook_timeout_s: float = 10.0
    webhook_retry_base_s: float = 5.0
    webhook_retry_max_s: float = 3600.0
    webhook_give_up_s: float = 3 * 86400.0
    # Delivered events are deleted from the outbox this long after delivery (dead ones are kept).
    webhook_keep_delivered_s: float = 7 * 86400.0
    # Held prompts a reviewer approved (gateway/pipeline/prompt_worker.py): each server runs the worker that
    # generates them when on, looking for due ones every `prompt_run_poll_interval_s`. A claimed run is
    # left to its worker for `prompt_run_lease_s`; after that (its worker died) another takes it.
    prompt_runs: bool = True
    prompt_run_poll_interval_s: float = 1.0
    prompt_run_lease_s: float = 120.0
    # Logging
    log_level: str = "INFO"
    log_format: str = "text"

    def __post_init__(self) -> None:
        _validate(self)


_CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("text", "json"),
    "rate_limit_store": ("memory", "database"),
}
_POSITIVE_INTS = (
    "max_prompts",
    "max_new_tokens_limit",
    "max_return_sequences",
    "max_stop_sequences",
    "max_stop_length",
    "max_prompt_chars",
    "default_max_new_tokens",
    "max_queue",
    "max_batch_size",
    "password_hash_time_cost",
    "password_hash_parallelism",
    "watch_max_per_key",
)


def _validate(s: Settings) -> None:
    for name, choices in _CHOICES.items():
        if getattr(s, name) not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {getattr(s, name)!r}")
    for name in _POSITIVE_INTS:
        if getattr(s, name) < 1:
            raise SettingsError(f"{name} must be at least 1, got {getattr(s, name)}")
    for name in ("default_requests_per_minute", "default_tokens_per_minute"):
        if getattr(s, name) < 0:
            raise SettingsError(f"{name} must be 0 (unlimited) or more, got {getattr(s, name)}")
    rows = s.cpu_prepack_stock_rows
    if rows != "auto" and not (rows.isascii() and rows.isdigit()):
        raise SettingsError(
            'cpu_prepack_stock_rows must be "auto" or a number of rows, 0 (oneDNN from one row) or more, '
            f"got {s.cpu_prepack_stock_rows!r}"
        )
    if s.max_batch_tokens < 0:
        raise SettingsError(f"max_batch_tokens must be 0 (rows only) or more, got {s.max_batch_tokens}")
    if s.prefill_chunk < 0:
        raise SettingsError(f"prefill_chunk must be 0 (one pass) or more, got {s.prefill_chunk}")
    if s.max_batch_wait_ms > 1000:
        raise SettingsError(f"max_batch_wait_ms must be at most 1000, got {s.max_batch_wait_ms}")
    if s.webhook_retry_base_s > s.webhook_retry_max_s:
        raise SettingsError("webhook_retry_base_s must not exceed webhook_retry_max_s")
    if s.default_max_new_tokens > s.max_new_tokens_limit:
        raise SettingsError("default_max_new_tokens must not exceed max_new_tokens_limit")
    for name, least in (
        ("grace_period_s", "non-negative"),
        ("stale_request_s", "positive"),
        ("maintenance_interval_s", "positive"),
        ("policy_refresh_s", "positive"),
        ("session_lifetime_s", "positive"),
        ("session_idle_s", "positive"),
        ("audit_anchor_interval_s", "positive"),
        ("max_batch_wait_ms", "non-negative"),
        ("watch_max_s", "positive"),
        ("watch_recheck_s", "positive"),
        ("webhook_poll_interval_s", "positive"),
        ("webhook_timeout_s", "positive"),
        ("webhook_retry_base_s", "positive"),
        ("webhook_retry_max_s", "positive"),
        ("webhook_give_up_s", "positive"),
        ("webhook_keep_delivered_s", "positive"),
        ("prompt_run_poll_interval_s", "positive"),
        ("prompt_run_lease_s", "positive"),
    ):
        value = getattr(s, name)
        if not math.isfinite(value) or value < 0 or (value == 0 and least == "positive"):
            raise SettingsError(f"{name} must be a {least} number, got {value}")
    for name in ("grpc_address", "metrics_address"):
        address = getattr(s, name)
        if name == "metrics_address" and not address:
            continue
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise SettingsError(f"{name} must look like HOST:PORT, got {address!r}")
    web_host, web_sep, web_port = s.web_address.rpartition(":")
    if not web_sep or not web_host or not web_port.isdigit() or not 0 <= int(web_port) <= 65535:
        raise SettingsError(f"web_address must look like HOST:PORT, got {s.web_address!r}")
    if s.session_secret is not None and len(s.session_secret) < MIN_SESSION_SECRET_CHARS:
        raise SettingsError(f"session_secret must be at least {MIN_SESSION_SECRET_CHARS} characters")
    if s.password_hash_memory_kib < 8 * s.password_hash_parallelism:
        raise SettingsError("password_hash_memory_kib must be at least 8 x password_hash_parallelism")
    if s.session_idle_s > s.session_lifetime_s:
        raise SettingsError("session_idle_s must not exceed session_lifetime_s")
    if s.audit_anchor_key is not None and s.audit_anchor_key_file is not None:
        raise SettingsError("audit_anchor_key and audit_anchor_key_file: give one or neither")
    if s.audit_anchor_key is not None and len(s.audit_anchor_key) < MIN_SESSION_SECRET_CHARS:
        raise SettingsError(f"audit_anchor_key must be at least {MIN_SESSION_SECRET_CHARS} characters")
    if s.audit_anchor_key_file is not None and not Path(s.audit_anchor_key_file).is_file():
        raise SettingsError(f"audit_anchor_key_file: no such file {s.audit_anchor_key_file!r}")
    if (s.tls_cert_file is None) != (s.tls_key_file is None):
        raise SettingsError("tls_cert_file and tls_key_file go together: give both or neither")
    for name in ("tls_cert_file", "tls_key_file"):
        path = getattr(s, name)
        if path is not None and not Path(path).is_file():
            raise SettingsError(f"{name}: no such file {path!r}")
    if not s.model.strip():
        raise SettingsError("model must name a hub id or a local directory")
    if not isinstance(s.moderation, Mapping):
        raise SettingsError("moderation must be a table")
    if not isinstance(s.review, Mapping) or set(s.review) - {"deadlines", "consensus", "qa"}:
        raise SettingsError("review must be a table with the keys deadlines, consensus and qa")
    if s.review:  # imported only when configured: the review package brings SQLAlchemy with it
        from gateway.review.consensus import ConsensusConfigError, parse_consensus
        from gateway.review.deadlines import DeadlineConfigError, parse_deadlines
        from gateway.review.qa import QaConfigError, parse_qa

        try:
            parse_deadlines(s.review.get("deadlines", {}))
            parse_consensus(s.review.get("consensus", {}))
            parse_qa(s.review.get("qa", {}))
        except (DeadlineConfigError, ConsensusConfigError, QaConfigError) as exc:
            raise SettingsError(str(exc)) from None
    if s.insecure_no_auth:
        exposed = [a for a in _listening(s) if not is_loopback(a.rpartition(":")[0])]
        if exposed:
            raise SettingsError(
                f"--insecure-no-auth is for trials on this machine only: {', '.join(exposed)} is not a "
                "loopback address (use 127.0.0.1 or ::1, or turn authentication on)"
            )


def served_model_name(s: Settings) -> str:
    """`served_model_name`, else the model's hub id or its local directory's name."""
    if s.served_model_name:
        return s.served_model_name
    local = Path(s.model).expanduser()
    return local.name if local.is_dir() else s.model


def _listening(s: Settings) -> list[str]:
    """The addresses that accept client calls (gRPC, and the web port with its POST /score)."""
    return [s.grpc_address, *([s.web_address] if s.web_enabled else [])]


def is_loopback(host: str) -> bool:
    """Whether a listening host is reachable from this machine only ("localhost", 127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def _field_types() -> dict[str, Any]:
    hints = get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turns a TOML, environment or flag value into the field's type, naming the field when it can't."""
    kind = _field_types()[name]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind in (str, str | None):
            if value is None or (kind == str | None and value == ""):
                return None if kind == str | None else ""
            if not isinstance(value, str | int | float):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{source}: {name} has an invalid value {value!r}") from None
    return value


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    # Sections are for readability ([model], [server], ...); only [moderation] is kept whole.
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and key not in WHOLE_TABLES:
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    names = _field_types()
    found: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in names and name not in WHOLE_TABLES:
            found[name] = value
    return found


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merges the three sources in precedence order and validates the result.

    `overrides` holds CLI flags; a value of None means "flag not given" and does not override.
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    names = _field_types()
    merged: dict[str, Any] = {}
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file:
        layers.append((str(config_file), _from_toml(Path(config_file))))
    layers.append(("environment", _from_env(env)))
    layers.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for source, layer in layers:
        for name, value in layer.items():
            if name not in names:
                raise SettingsError(f"{source}: unknown setting {name!r}")
            if name in FLAG_ONLY and source != "command line":
                raise SettingsError(f"{source}: {name} can only be given as the {FLAG_ONLY[name]} flag")
            merged[name] = value if name in WHOLE_TABLES else _coerce(name, value, source)
    try:
        return Settings(**merged)
    except TypeError as exc:  # a wrong-typed value that slipped through coercion
        raise SettingsError(str(exc)) from None
