"""mininq's configuration: one frozen `Config`, built from four layers.

Precedence, highest first: overrides (command-line flags) > environment >
TOML file > defaults. Every value is checked (type and range) in the layer it
comes from, so an error names the place the user has to fix: the TOML key
(`worker.concurrency`), the environment variable
(`MININQ_WORKER_CONCURRENCY`) or the flag's key (`server.port`).

The defaults live only in the dataclasses below; the set of known keys, their
types and the environment variable names are derived from them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mininq import fields
from mininq.egress import parse_networks

DEFAULT_CONFIG_FILE = "mininq.toml"
MASK = "********"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 6390
    db_path: str = "mininq.db"
    database_url: str = ""
    max_body_bytes: int = 1048576
    api_token: str = ""


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = 64
    poll_interval_ms: int = 500
    queues: tuple[str, ...] = ()
    reaper_interval_secs: int = 30
    scheduler_interval_secs: int = 15
    retention_days: int = 0
    dead_retention_days: int = 0
    history_days: int = 7
    cleanup_interval_secs: int = 3600
    shutdown_timeout_secs: int = 30
    heartbeat_interval_secs: int = 2
    node_timeout_secs: int = 15


@dataclass(frozen=True)
class DefaultsConfig:
    max_retries: int = 3
    retry_backoff: str = "exponential"
    base_delay_ms: int = 1000
    max_delay_ms: int = 300000
    timeout_ms: int = 30000
    queue_max_concurrency: int = 10


@dataclass(frozen=True)
class WebhooksConfig:
    signing_secret: str = ""
    max_result_bytes: int = 65536
    # In-flight deliveries per destination at most; 0: worker.concurrency.
    max_in_flight_per_destination: int = 0
    # Failed deliveries in a row that open a destination's breaker; 0: never.
    breaker_threshold: int = 10
    # CIDRs (or "private") deliveries may not connect to, and exceptions.
    deny_networks: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "auto"  # pretty when stderr is a terminal, else json


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def destination_limit(self) -> int:
        """In-flight deliveries per destination at most (the adaptive limit's
        ceiling and starting point): max_in_flight_per_destination, or
        worker.concurrency when that is 0."""
        return self.webhooks.max_in_flight_per_destination or self.worker.concurrency


class ConfigError(Exception):
    """A configuration problem; the message starts with the key or variable to fix."""


_SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]

# Short environment variables kept for convenience; the long form
# MININQ_<SECTION>_<KEY> wins when both are set, because it is the explicit one.
SHORT_ENV: dict[str, str] = {
    "MININQ_HOST": "server.host",
    "MININQ_PORT": "server.port",
    "MININQ_DB_PATH": "server.db_path",
    "MININQ_DATABASE_URL": "server.database_url",
    "MININQ_LOG_LEVEL": "logging.level",
    "MININQ_API_TOKEN": "server.api_token",
}

SECRET_KEYS = frozenset({"server.api_token", "webhooks.signing_secret"})

_YEAR_SECS = 365 * 86_400
_INT_RANGES: dict[str, tuple[int, int]] = {
    "server.port": (1, 65_535),
    "server.max_body_bytes": (1, 2**31 - 1),
    "worker.concurrency": (1, 100_000),
    "worker.poll_interval_ms": (1, 86_400_000),
    "worker.reaper_interval_secs": (1, 86_400),
    "worker.scheduler_interval_secs": (1, 86_400),
    "worker.retention_days": (0, 36_500),
    "worker.dead_retention_days": (0, 36_500),
    "worker.history_days": (1, 36_500),
    "worker.cleanup_interval_secs": (1, _YEAR_SECS),
    "worker.shutdown_timeout_secs": (0, 86_400),
    "worker.heartbeat_interval_secs": (1, 3_600),
    "worker.node_timeout_secs": (2, 86_400),
    "webhooks.max_result_bytes": (0, 2**31 - 1),
    "webhooks.max_in_flight_per_destination": (0, 100_000),
    "webhooks.breaker_threshold": (0, 1_000_000),
    # [defaults] takes what the API takes for a queue's or a job's own value.
    **{
        f"defaults.{name}": spec.int_bounds
        for name, spec in fields.JOB_DEFAULTS.items()
        if spec.kind == "int"
    },
    "defaults.queue_max_concurrency": (1, fields.MAX_CONCURRENCY),
}

# Enumerated strings; compared and stored in lower case.
_CHOICES: dict[str, tuple[str, ...]] = {
    "defaults.retry_backoff": fields.BACKOFFS,
    "logging.level": ("trace", "debug", "info", "warn", "error"),
    "logging.format": ("auto", "json", "pretty"),
}


def _kind(key: str) -> type:
    """int, str or tuple: the type of the key's default decides how it is read."""
    section, name = key.split(".", 1)
    return type(getattr(_SECTIONS[section](), name))


def _all_keys() -> list[str]:
    return [
        f"{section}.{f.name}" for section, cls in _SECTIONS.items() for f in dataclasses.fields(cls)
    ]


def _show(value: Any) -> str:
    """A value as the user wrote it, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


# --- checking one value ---------------------------------------------------


def _check_typed(key: str, value: Any) -> Any:
    """Type-check a value that already has a type (TOML, overrides); return it normalized."""
    kind = _kind(key)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_show(value)}")
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_show(value)}")
    else:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {_show(value)}")
        value = tuple(value)
    return _check_range(key, value)


def _parse_text(key: str, text: str) -> Any:
    """Parse a string (environment, command line) per the key's type; return it normalized."""
    kind = _kind(key)
    if kind is int:
        if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
            raise ValueError(f"expected an integer, got {text!r}")
        return _check_range(key, int(text))
    if kind is str:
        return _check_range(key, text)
    # A list of strings: comma-separated, blanks ignored ("" is the empty list).
    return _check_range(key, tuple(part.strip() for part in text.split(",") if part.strip()))


def _check_range(key: str, value: Any) -> Any:
    if key in _INT_RANGES:
        low, high = _INT_RANGES[key]
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
    elif key in _CHOICES:
        value = value.strip().lower()
        if value not in _CHOICES[key]:
            raise ValueError(f"must be one of {', '.join(_CHOICES[key])}; got {value!r}")
    elif key in _STRING_CHECKS:
        _STRING_CHECKS[key](value)
    return value


def _not_empty(value: str) -> None:
    if not value.strip():
        raise ValueError("must not be empty")


def _queue_names(names: tuple[str, ...]) -> None:
    for name in names:
        if not fields.QUEUE_NAME.match(name):
            raise ValueError(
                f"queue name {name!r} must be 1-128 letters, digits or '-_.:' characters"
            )


def _signing_secret(secret: str) -> None:
    if secret == "":
        return
    if not secret.startswith("whsec_"):
        raise ValueError("must start with 'whsec_' followed by base64 (or be empty)")
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after 'whsec_' is not valid base64") from None
    if not key:
        raise ValueError("the part after 'whsec_' is empty")


def _networks(entries: tuple[str, ...]) -> None:
    parse_networks(entries)


def _database_url(url: str) -> None:
    if url and not url.startswith(POSTGRES_SCHEMES):
        scheme = url.split("://", 1)[0] if "://" in url else url
        raise ValueError(
            f"must be a PostgreSQL URL (postgresql://user:password@host:port/database) "
            f"or empty for SQLite; got scheme {mask_url(scheme)!r}"
        )


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ******** (for messages and check-config)."""
    match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*:)([^@/?#]*)(@.*)$", url)
    if match is None:
        return re.sub(r"(password=)[^&]*", rf"\1{MASK}", url)
    return match.group(1) + MASK + re.sub(r"(password=)[^&]*", rf"\1{MASK}", match.group(3))


_STRING_CHECKS: dict[str, Callable[[Any], None]] = {
    "server.host": _not_empty,
    "server.database_url": _database_url,
    "server.db_path": _not_empty,
    "worker.queues": _queue_names,
    "webhooks.signing_secret": _signing_secret,
    "webhooks.deny_networks": _networks,
    "webhooks.allow_networks": _networks,
}


# --- the layers -------------------------------------------------------------


def _read_file(path: Path) -> dict[str, Any]:
    """The TOML file's values as {"section.key": value}, checked."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None

    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{section}: unknown section (in {path})")
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: expected a table [{section}] (in {path})")
        known = {f.name for f in dataclasses.fields(_SECTIONS[section])}
        for name, value in table.items():
            key = f"{section}.{name}"
            if name not in known:
                raise ConfigError(f"{key}: unknown key (in {path})")
            try:
                values[key] = _check_typed(key, value)
            except ValueError as e:
                raise ConfigError(f"{key}: {e} (in {path})") from None
    return values


def _read_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Values from MININQ_* variables; variables mininq does not know are ignored."""
    values: dict[str, Any] = {}
    sources: list[tuple[str, str]] = [(var, key) for var, key in SHORT_ENV.items()]
    sources += [(f"MININQ_{key.replace('.', '_').upper()}", key) for key in _all_keys()]
    for var, key in sources:  # long forms come last and so overwrite short ones
        if var in env:
            try:
                values[key] = _parse_text(key, env[var])
            except ValueError as e:
                raise ConfigError(f"{var}: {e}") from None
    return values


def _read_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Command-line values keyed "section.key"; None means the flag was not given."""
    known = set(_all_keys())
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known:
            raise ConfigError(f"{key}: unknown key")
        try:
            if isinstance(value, str) and _kind(key) is not str:
                values[key] = _parse_text(key, value)
            else:
                values[key] = _check_typed(key, value)
        except ValueError as e:
            raise ConfigError(f"{key}: {e} (from the command line)") from None
    return values


def load_config(
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration; raise ConfigError naming the first bad key.

    `config_path` None reads ./mininq.toml when it exists (relative to the
    current directory); an explicit path that does not exist is an error.
    `env` None reads os.environ.
    """
    if config_path is not None:
        file_values = _read_file(Path(config_path))
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        file_values = _read_file(Path(DEFAULT_CONFIG_FILE))
    else:
        file_values = {}
    merged = {
        **file_values,
        **_read_env(os.environ if env is None else env),
        **_read_overrides(overrides or {}),
    }
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        prefix = f"{section}."
        sections[section] = cls(
            **{k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
        )
    return Config(**sections)


def resolve_paths(config: Config) -> Config:
    """The configuration with `db_path` made absolute and free of symlinks.

    Called once, before anything opens the database: the engine lock, the
    write lock, the wake socket's name and backups all derive from this one
    spelling, so `./x.db`, `/srv/x.db` and a symlink to it are one database
    with one engine, not two engines that would each recover the other's
    running jobs.
    """
    real = os.path.realpath(config.server.db_path)
    if real == config.server.db_path:
        return config
    return dataclasses.replace(
        config, server=dataclasses.replace(config.server, db_path=real)
    )


# --- printing -----------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON escapes are valid TOML
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def config_to_toml(config: Config, mask_secrets: bool = True) -> str:
    """The configuration as a TOML document (for `mininq check-config`).

    Set secrets are shown as ******** unless mask_secrets is False; unset ones
    stay "" so a reader can tell whether a token is configured.
    """
    lines: list[str] = []
    for section in _SECTIONS:
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        table = getattr(config, section)
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            if mask_secrets and value and f"{section}.{f.name}" in SECRET_KEYS:
                value = MASK
            elif mask_secrets and f"{section}.{f.name}" == "server.database_url":
                value = mask_url(value)
            lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
