"""Configuration: layers, precedence, validation and the check-config output."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from mininq.config import Config, ConfigError, config_to_toml, load_config


def write_toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "conf.toml"
    path.write_text(text)
    return str(path)


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    return str(info.value)


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path, monkeypatch):
    """No stray ./mininq.toml from the repository may leak into a test."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def test_defaults_match_the_spec():
    config = load_config(env={})
    assert config == Config()
    assert config.server.port == 6390
    assert config.server.host == "127.0.0.1"
    assert config.worker.queues == ()
    assert config.defaults.retry_backoff == "exponential"
    assert config.webhooks.max_result_bytes == 65536
    assert config.logging.format == "auto"


def test_file_values_are_read(tmp_path):
    path = write_toml(
        tmp_path,
        """
[server]
port = 7001
api_token = "s3cret"
[worker]
queues = ["emails", "reports:daily"]
retention_days = 7
[defaults]
retry_backoff = "linear"
[webhooks]
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
[logging]
level = "warn"
format = "pretty"
""",
    )
    config = load_config(path, env={})
    assert config.server.port == 7001
    assert config.server.api_token == "s3cret"
    assert config.worker.queues == ("emails", "reports:daily")
    assert config.worker.retention_days == 7
    assert config.defaults.retry_backoff == "linear"
    assert config.logging == dataclasses.replace(config.logging, level="warn", format="pretty")
    # untouched keys keep their defaults
    assert config.worker.concurrency == 64


def test_mininq_toml_in_the_current_directory_is_found():
    Path("mininq.toml").write_text("[server]\nport = 7100\n")
    assert load_config(env={}).server.port == 7100


def test_a_missing_explicit_file_is_an_error(tmp_path):
    assert "not found" in error_of(config_path=str(tmp_path / "nope.toml"), env={})


def test_invalid_toml_is_an_error(tmp_path):
    path = write_toml(tmp_path, "[server\nport = 1\n")
    assert "invalid TOML" in error_of(config_path=path, env={})


@pytest.mark.parametrize(
    ("key", "file_value", "env_var", "env_value", "flag_value", "expected"),
    [
        ("server.port", "7001", "MININQ_SERVER_PORT", "7002", 7003, 7003),
        ("server.host", '"10.0.0.1"', "MININQ_SERVER_HOST", "10.0.0.2", "10.0.0.3", "10.0.0.3"),
        ("server.db_path", '"file.db"', "MININQ_SERVER_DB_PATH", "env.db", "flag.db", "flag.db"),
        ("logging.level", '"warn"', "MININQ_LOGGING_LEVEL", "error", "debug", "debug"),
    ],
)
def test_precedence_file_then_env_then_flag(
    tmp_path, key, file_value, env_var, env_value, flag_value, expected
):
    section, name = key.split(".")
    path = write_toml(tmp_path, f"[{section}]\n{name} = {file_value}\n")

    def value(config: Config):
        return getattr(getattr(config, section), name)

    assert value(load_config(path, env={})) == tomllib.loads(f"v = {file_value}")["v"]
    with_env = value(load_config(path, env={env_var: env_value}))
    assert str(with_env) == env_value
    both = load_config(path, env={env_var: env_value}, overrides={key: flag_value})
    assert value(both) == expected


def test_a_flag_left_unset_does_not_override():
    config = load_config(env={"MININQ_PORT": "7005"}, overrides={"server.port": None})
    assert config.server.port == 7005


def test_environment_long_and_short_forms():
    env = {
        "MININQ_HOST": "0.0.0.0",
        "MININQ_PORT": "8000",
        "MININQ_DB_PATH": "/var/lib/mininq/jobs.db",
        "MININQ_LOG_LEVEL": "DEBUG",
        "MININQ_API_TOKEN": "tok",
        "MININQ_WORKER_CONCURRENCY": "8",
        "MININQ_WORKER_QUEUES": "a, b,,c",
        "MININQ_DEFAULTS_RETRY_BACKOFF": "fixed",
        "MININQ_WEBHOOKS_MAX_RESULT_BYTES": "100",
        "MININQ_LOGGING_FORMAT": "pretty",
    }
    config = load_config(env=env)
    assert config.server == dataclasses.replace(
        config.server, host="0.0.0.0", port=8000, db_path="/var/lib/mininq/jobs.db", api_token="tok"
    )
    assert config.logging.level == "debug"  # enumerations are case-insensitive
    assert config.worker.concurrency == 8
    assert config.worker.queues == ("a", "b", "c")
    assert config.defaults.retry_backoff == "fixed"
    assert config.webhooks.max_result_bytes == 100
    assert config.logging.format == "pretty"


def test_long_env_form_wins_over_short_form():
    config = load_config(env={"MININQ_PORT": "7001", "MININQ_SERVER_PORT": "7002"})
    assert config.server.port == 7002
    config = load_config(env={"MININQ_LOGGING_LEVEL": "error", "MININQ_LOG_LEVEL": "trace"})
    assert config.logging.level == "error"


def test_empty_queue_list_from_env_means_all_queues(tmp_path):
    path = write_toml(tmp_path, '[worker]\nqueues = ["a"]\n')
    assert load_config(path, env={"MININQ_WORKER_QUEUES": ""}).worker.queues == ()


def test_unknown_mininq_variables_are_ignored():
    config = load_config(env={"MININQ_TEST_BINARY": "/x", "MININQ_WORKER_CONCURENCY": "1"})
    assert config == Config()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[worker]\nconcurency = 8\n", "worker.concurency: unknown key"),
        ("[workers]\nconcurrency = 8\n", "workers: unknown section"),
        ("worker = 3\n", "worker: expected a table"),
        ('[worker]\nconcurrency = "abc"\n', "worker.concurrency: expected an integer, got 'abc'"),
        ("[worker]\nconcurrency = true\n", "worker.concurrency: expected an integer, got true"),
        ("[worker]\nconcurrency = 1.5\n", "worker.concurrency: expected an integer, got 1.5"),
        ("[worker]\nconcurrency = 0\n", "worker.concurrency: must be between 1"),
        ("[server]\nport = 0\n", "server.port: must be between 1 and 65535, got 0"),
        ("[server]\nport = 65536\n", "server.port: must be between 1 and 65535"),
        ("[server]\nhost = 1\n", "server.host: expected a string, got 1"),
        ('[server]\nhost = ""\n', "server.host: must not be empty"),
        ("[worker]\npoll_interval_ms = 0\n", "worker.poll_interval_ms: must be between 1"),
        ("[worker]\nreaper_interval_secs = 0\n", "worker.reaper_interval_secs: must be between 1"),
        ("[worker]\nretention_days = -1\n", "worker.retention_days: must be between 0"),
        ('[worker]\nqueues = "a"\n', "worker.queues: expected a list of strings"),
        ("[worker]\nqueues = [1]\n", "worker.queues: expected a list of strings"),
        ('[worker]\nqueues = ["ok", "no spaces"]\n', "worker.queues: queue name 'no spaces'"),
        ('[defaults]\nretry_backoff = "random"\n', "defaults.retry_backoff: must be one of"),
        ("[defaults]\nmax_retries = -1\n", "defaults.max_retries: must be between 0"),
        ("[defaults]\ntimeout_ms = 0\n", "defaults.timeout_ms: must be between 1"),
        ('[webhooks]\nsigning_secret = "secret"\n', "webhooks.signing_secret: must start with"),
        ('[webhooks]\nsigning_secret = "whsec_!!"\n', "webhooks.signing_secret: the part after"),
        ('[logging]\nlevel = "verbose"\n', "logging.level: must be one of trace, debug, info"),
        ('[logging]\nformat = "xml"\n', "logging.format: must be one of auto, json, pretty"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path, toml, message):
    path = write_toml(tmp_path, toml)
    error = error_of(config_path=path, env={})
    assert error.startswith(message), error
    assert path in error  # and the file to fix


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MININQ_WORKER_CONCURRENCY": "x"},
            "MININQ_WORKER_CONCURRENCY: expected an integer, got 'x'",
        ),
        ({"MININQ_PORT": "70000"}, "MININQ_PORT: must be between 1 and 65535, got 70000"),
        ({"MININQ_PORT": ""}, "MININQ_PORT: expected an integer, got ''"),
        ({"MININQ_WORKER_QUEUES": "a,b c"}, "MININQ_WORKER_QUEUES: queue name 'b c'"),
        ({"MININQ_LOG_LEVEL": "loud"}, "MININQ_LOG_LEVEL: must be one of"),
    ],
)
def test_bad_environment_values_name_the_variable(env, message):
    error = error_of(env=env)
    assert error.startswith(message), error


@pytest.mark.parametrize(
    ("key", "too_big"),
    [("max_retries", 1001), ("base_delay_ms", 2_592_000_001), ("max_delay_ms", 2_592_000_001),
     ("timeout_ms", 86_400_001), ("queue_max_concurrency", 100_001)],
)  # fmt: skip
def test_defaults_take_only_what_the_api_takes(api, tmp_path, qname, key, too_big):
    """[defaults] and the API's bounds for a queue's own settings are one declaration:
    the largest value one takes, the other takes too, and one more both refuse."""
    path = write_toml(tmp_path, f"[defaults]\n{key} = {too_big}\n")
    error = error_of(config_path=path, env={})
    assert error.startswith(f"defaults.{key}: must be between"), error
    config = load_config(config_path=write_toml(tmp_path, f"[defaults]\n{key} = {too_big - 1}\n"),
                         env={})  # fmt: skip
    assert getattr(config.defaults, key) == too_big - 1
    setting = "max_concurrency" if key == "queue_max_concurrency" else key
    api.post("/queues", {"name": qname, setting: too_big - 1}).expect(201)
    refused = api.put(f"/queues/{qname}", {setting: too_big})
    assert refused.status == 400 and refused.json["error"].startswith(f"{setting}:"), refused


def test_bad_overrides_name_the_key():
    assert error_of(env={}, overrides={"server.port": "abc"}).startswith(
        "server.port: expected an integer, got 'abc'"
    )
    assert error_of(env={}, overrides={"server.prot": 1}).startswith("server.prot: unknown key")


def test_a_bad_file_value_is_reported_even_when_env_would_override_it(tmp_path):
    path = write_toml(tmp_path, "[server]\nport = 0\n")
    assert error_of(config_path=path, env={"MININQ_PORT": "7000"}).startswith("server.port")


def test_check_config_output_masks_secrets_and_round_trips(tmp_path):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    path = write_toml(
        tmp_path,
        f'[server]\napi_token = "tok-123"\n[webhooks]\nsigning_secret = "{secret}"\n'
        '[worker]\nqueues = ["a", "b.c"]\n',
    )
    config = load_config(path, env={"MININQ_SERVER_HOST": 'odd "host"'})

    masked = config_to_toml(config)
    assert "tok-123" not in masked and secret not in masked
    parsed = tomllib.loads(masked)
    assert parsed["server"]["api_token"] == "********"
    assert parsed["webhooks"]["signing_secret"] == "********"
    assert parsed["worker"]["queues"] == ["a", "b.c"]
    assert parsed["server"]["host"] == 'odd "host"'

    unmasked_path = tmp_path / "unmasked.toml"
    unmasked_path.write_text(config_to_toml(config, mask_secrets=False))
    assert load_config(str(unmasked_path), env={}) == config


def test_unset_secrets_stay_visibly_empty():
    parsed = tomllib.loads(config_to_toml(Config()))
    assert parsed["server"]["api_token"] == ""
    assert parsed["webhooks"]["signing_secret"] == ""


def test_config_pickles_for_the_engine_process():
    import pickle

    config = load_config(env={"MININQ_WORKER_QUEUES": "a,b"})
    assert pickle.loads(pickle.dumps(config)) == config
