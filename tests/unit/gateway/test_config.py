import re
from pathlib import Path

import pytest

from gateway.config import Settings, SettingsError, load_settings, served_model_name


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "modgate.toml"
    path.write_text(text)
    return path


def test_defaults_without_sources() -> None:
    s = load_settings(None, env={})
    assert s == Settings()
    assert s.model == "EleutherAI/gpt-neo-125M"
    assert s.grpc_address == "127.0.0.1:50051"


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[model]\nmodel = "from-file"\ndtype = "bfloat16"\n'
        '[server]\ngrpc_address = "0.0.0.0:1"\nmax_queue = 3\n',
    )
    env = {"MODGATE_MODEL": "from-env", "MODGATE_MAX_QUEUE": "9", "UNRELATED": "x"}
    s = load_settings(path, env=env, overrides={"model": "from-flag", "dtype": None})
    assert s.model == "from-flag"  # flag beats env beats file
    assert s.max_queue == 9  # env beats file
    assert s.dtype == "bfloat16"  # file value kept when nothing above it is set
    assert s.grpc_address == "0.0.0.0:1"


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "DEBUG"\n')
    assert load_settings(None, env={"MODGATE_CONFIG": str(path)}).log_level == "DEBUG"


def test_moderation_table_kept_whole(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[moderation]\ndefault_policy = "strict"\n[moderation.profanity]\nextra_words = ["x"]\n'
    )
    s = load_settings(path, env={})
    assert s.moderation == {"default_policy": "strict", "profanity": {"extra_words": ["x"]}}


def test_env_booleans_and_numbers() -> None:
    s = load_settings(None, env={"MODGATE_OFFLINE_MODERATION": "yes", "MODGATE_GRACE_PERIOD_S": "2.5"})
    assert s.offline_moderation is True
    assert s.grace_period_s == 2.5
    s = load_settings(
        None,
        env={
            "MODGATE_CPU_PREPACK": "false",
            "MODGATE_PREFILL_CHUNK": "0",
            "MODGATE_RATE_LIMIT_STORE": "database",
            "MODGATE_CPU_PREPACK_STOCK_ROWS": "0",
            "MODGATE_SHARE_CORES": "false",
            "MODGATE_MAX_BATCH_TOKENS": "0",
        },
    )
    assert (s.cpu_prepack, s.prefill_chunk, s.rate_limit_store) == (False, 0, "database")
    assert (s.share_cores, s.max_batch_tokens) == (False, 0)
    defaults = load_settings(None, env={})
    assert (defaults.share_cores, defaults.max_batch_tokens, defaults.max_batch_size) == (True, 8192, 32)
    assert s.cpu_prepack_stock_rows == "0" and load_settings(None, env={}).cpu_prepack_stock_rows == "auto"


def test_stock_rows_from_a_toml_number(tmp_path: Path) -> None:
    config = tmp_path / "modgate.toml"
    config.write_text("cpu_prepack_stock_rows = 3\n")
    assert load_settings(config, env={}).cpu_prepack_stock_rows == "3"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODGATE_MAX_QUEUE": "many"}, "max_queue has an invalid value"),
        ({"MODGATE_MAX_QUEUE": "0"}, "max_queue must be at least 1"),
        ({"MODGATE_DEVICE": "tpu"}, "device must be one of"),
        ({"MODGATE_GRPC_ADDRESS": "nowhere"}, "grpc_address must look like HOST:PORT"),
        ({"MODGATE_OFFLINE_MODERATION": "perhaps"}, "offline_moderation has an invalid value"),
        ({"MODGATE_GRACE_PERIOD_S": "nan"}, "grace_period_s must be a non-negative number"),
        ({"MODGATE_PREFILL_CHUNK": "-1"}, "prefill_chunk must be 0 \\(one pass\\) or more"),
        ({"MODGATE_RATE_LIMIT_STORE": "redis"}, "rate_limit_store must be one of memory, database"),
        ({"MODGATE_CPU_PREPACK": "sometimes"}, "cpu_prepack has an invalid value"),
        ({"MODGATE_CPU_PREPACK_STOCK_ROWS": "-1"}, 'cpu_prepack_stock_rows must be "auto" or a number'),
        ({"MODGATE_CPU_PREPACK_STOCK_ROWS": "some"}, 'cpu_prepack_stock_rows must be "auto" or a number'),
        ({"MODGATE_MAX_BATCH_TOKENS": "-1"}, "max_batch_tokens must be 0 \\(rows only\\) or more"),
        ({"MODGATE_SHARE_CORES": "maybe"}, "share_cores has an invalid value"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, env=env)


def test_unknown_key_in_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown setting 'modle'"):
        load_settings(write(tmp_path, 'modle = "x"\n'), env={})


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write(tmp_path, "model = \n"), env={})


def test_readme_example_config_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    s = load_settings(write(tmp_path, block), env={})
    assert s.model == "EleutherAI/gpt-neo-125M" and s.model_revision == "main"
    assert s.max_queue == 64 and s.log_format == "text"
    assert s.moderation == {"default_policy": "default"}
    assert s.review["qa"] == {"default": {"sample_rate": 0.02}}


def test_maintenance_intervals_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="stale_request_s must be a positive number"):
        load_settings(None, env={"MODGATE_STALE_REQUEST_S": "0"})


@pytest.mark.parametrize(
    ("source", "where"),
    [("file", "modgate.toml"), ("env", "environment")],
)
def test_insecure_no_auth_is_a_flag_only(tmp_path: Path, source: str, where: str) -> None:
    """A file or an environment could switch authentication off without anyone seeing it at start-up."""
    path = write(tmp_path, "insecure_no_auth = true\n") if source == "file" else None
    env = {"MODGATE_INSECURE_NO_AUTH": "1"} if source == "env" else {}
    with pytest.raises(SettingsError, match=f"{where}.*only be given as the --insecure-no-auth flag"):
        load_settings(path, env=env)
    assert load_settings(None, env={}, overrides={"insecure_no_auth": True}).insecure_no_auth


@pytest.mark.parametrize(
    ("overrides", "exposed"),
    [
        ({"grpc_address": "0.0.0.0:50051"}, "0.0.0.0:50051"),
        ({"grpc_address": "[::]:50051"}, "[::]:50051"),
        ({"grpc_address": "gateway.example:50051"}, "gateway.example:50051"),
        ({"web_address": "10.0.0.5:8080"}, "10.0.0.5:8080"),
    ],
)
def test_insecure_no_auth_only_on_loopback(overrides: dict[str, str], exposed: str) -> None:
    with pytest.raises(SettingsError, match=f"{re.escape(exposed)} is not a loopback address"):
        load_settings(None, env={}, overrides={"insecure_no_auth": True, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {"grpc_address": "127.0.0.1:1", "web_address": "localhost:2"},
        {"grpc_address": "[::1]:1", "web_address": "127.0.0.2:2"},
        {"grpc_address": "127.0.0.1:1", "web_address": "0.0.0.0:2", "web_enabled": False},
    ],
)
def test_insecure_no_auth_on_loopback_addresses(overrides: dict[str, object]) -> None:
    assert load_settings(None, env={}, overrides={"insecure_no_auth": True, **overrides}).insecure_no_auth


def test_served_model_name(tmp_path: Path) -> None:
    """A hub id is served as is; a local directory by its name (its path is the operator's business)."""
    assert served_model_name(Settings(model="EleutherAI/gpt-neo-125M")) == "EleutherAI/gpt-neo-125M"
    local = tmp_path / "models" / "gpt-neo-tiny"
    local.mkdir(parents=True)
    assert served_model_name(Settings(model=str(local))) == "gpt-neo-tiny"
    assert served_model_name(Settings(model=str(local), served_model_name="neo")) == "neo"


def test_review_deadlines_are_checked_with_the_settings(tmp_path: Path) -> None:
    good = write(tmp_path, '[review.deadlines.default]\nafter_s = 60\naction = "escalate"\n')
    assert load_settings(good, env={}).review == {
        "deadlines": {"default": {"after_s": 60, "action": "escalate"}}
    }
    for text, message in [
        ("[review.deadlines.default]\nafter_s = 0\n", "review.deadlines.default.after_s"),
        ('[review.deadlines.default]\nafter_s = 9\naction = "ignore"\n', "review.deadlines.default.action"),
        ("[review]\ndeadline = 3\n", "review must be a table with the keys deadlines, consensus and qa"),
    ]:
        with pytest.raises(SettingsError, match=message):
            load_settings(write(tmp_path, text), env={})


def test_qa_sample_rates_are_checked_with_the_settings(tmp_path: Path) -> None:
    good = write(tmp_path, "[review.qa.default]\nsample_rate = 0.02\n")
    assert load_settings(good, env={}).review == {"qa": {"default": {"sample_rate": 0.02}}}
    for text, message in [
        ("[review.qa.default]\nsample_rate = 0\n", r"review\.qa\.default\.sample_rate: .* got 0"),
        ("[review.qa.default]\nsample_rate = 1.5\n", r"review\.qa\.default\.sample_rate"),
        ('[review.qa.default]\nsample_rate = "2%"\n', r"review\.qa\.default\.sample_rate"),
        ("[review.qa.default]\nrate = 0.1\n", "review.qa.default: a table with one key, sample_rate"),
        ("[review]\nqa = 3\n", "review.qa must be a table of policies"),
    ]:
        with pytest.raises(SettingsError, match=message):
            load_settings(write(tmp_path, text), env={})


def test_a_deadline_for_an_unknown_policy_stops_serve() -> None:
    from gateway.server import StartupError, review_deadlines
    from moderation.config import build_moderator, offline_demo_config

    settings = Settings(review={"deadlines": {"no-such-policy": {"after_s": 60}}})
    with pytest.raises(StartupError, match="no-such-policy"):
        review_deadlines(settings, build_moderator(offline_demo_config()))
    assert review_deadlines(Settings(), build_moderator(offline_demo_config())) == {}
