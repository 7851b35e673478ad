"""The `mininq` command: serve (the default), check-config, backup, --version.

Heavy imports (Sanic, the app) happen only inside `serve`, so --version,
--help and check-config answer at once.
"""

from __future__ import annotations

import argparse
import errno
import multiprocessing
import os
import signal
import sys
import time
from typing import Any, NoReturn

from mininq import __version__
from mininq.config import Config, ConfigError, config_to_toml, load_config, resolve_paths

EXIT_FAILURE = 1
EXIT_USAGE = 2  # also bad configuration: the user has to change something

_DESCRIPTION = """\
mininq runs background jobs from one executable and one SQLite file:
POST a job to its HTTP API and it is delivered as a webhook, with retries.

Configuration: command-line flags > MININQ_* environment variables >
TOML file (./mininq.toml, or --config PATH) > defaults.
"""


def _add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="PATH", default=argparse.SUPPRESS,
        help="TOML configuration file (default: ./mininq.toml if present)",
    )  # fmt: skip


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    _add_config_flag(parser)
    s = argparse.SUPPRESS  # unset flags must not hide values given before the subcommand
    parser.add_argument("--host", metavar="H", default=s, help="address to listen on")
    parser.add_argument("--port", metavar="P", default=s, help="port to listen on")
    parser.add_argument("--db-path", metavar="F", default=s, help="SQLite database file")
    parser.add_argument(
        "--database-url", metavar="URL", default=s,
        help="PostgreSQL database shared by several nodes (empty: SQLite at --db-path)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", metavar="L", default=s, help="trace, debug, info, warn or error"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mininq",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="With no command, mininq serves.",
    )
    parser.add_argument("--version", action="version", version=f"mininq {__version__}")
    _add_server_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_server_flags(
        commands.add_parser("serve", help="run the HTTP API, dashboard and engine (default)")
    )
    _add_server_flags(
        commands.add_parser(
            "check-config", help="print the effective configuration (secrets masked) and exit"
        )
    )
    backup = commands.add_parser(
        "backup", help="copy the live database to DEST (safe while mininq runs)"
    )
    backup.add_argument("dest", metavar="DEST", help="new file to write; must not exist")
    _add_config_flag(backup)
    backup.add_argument("--db-path", metavar="F", default=argparse.SUPPRESS,
                        help="SQLite database file")  # fmt: skip
    backup.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS,
                        help="PostgreSQL database (refused: use pg_dump)")  # fmt: skip
    return parser


def _fail(prefix: str, message: str, code: int) -> NoReturn:
    print(f"mininq: {prefix}: {message}", file=sys.stderr)
    sys.exit(code)


def _load(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
        "server.db_path": getattr(args, "db_path", None),
        "server.database_url": getattr(args, "database_url", None),
        "logging.level": getattr(args, "log_level", None),
    }
    try:
        return load_config(getattr(args, "config", None), overrides=overrides)
    except ConfigError as e:
        _fail("config error", str(e), EXIT_USAGE)


_LISTEN_ERRORS = {
    errno.EADDRINUSE: "the address is in use (another mininq, or another program, listens there)",
    errno.EADDRNOTAVAIL: "no network interface of this machine has that address",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def _serve(config: Config) -> None:
    from mininq.logs import get_logger, setup_logging

    setup_logging(config.logging)
    from mininq.store.errors import DatabaseRefused, StartupError

    try:
        from mininq.app import serve

        serve(config)
    except (DatabaseRefused, StartupError) as e:
        # The user's database or its settings, not a bug: one line that names
        # it (never a password), no traceback.
        get_logger("mininq.cli").error("start-up failed: %s", e)
        sys.exit(EXIT_FAILURE)
    except OSError as e:
        if e.filename is not None or e.errno not in _LISTEN_ERRORS:
            get_logger("mininq.cli").exception("start-up failed")
            sys.exit(EXIT_FAILURE)
        # The address (server.host, server.port) can't be had: say which, and why.
        get_logger("mininq.cli").error(
            "start-up failed: server.host/server.port %s:%d: cannot listen there: %s",
            config.server.host, config.server.port, _LISTEN_ERRORS[e.errno])
        sys.exit(EXIT_FAILURE)
    except Exception:  # noqa: BLE001 - logged, then a non-zero exit
        # One log line in the configured format instead of a bare traceback.
        get_logger("mininq.cli").exception("start-up failed")
        sys.exit(EXIT_FAILURE)


def _check_config(config: Config) -> None:
    sys.stdout.write(config_to_toml(config, mask_secrets=True))


def _backup(config: Config, dest: str) -> None:
    from mininq.store.backup import BackupError, backup_database

    if config.server.database_url:
        _fail("backup failed", "database_url is set: mininq backs up only its SQLite file; "
              "back up the PostgreSQL database with pg_dump", EXIT_FAILURE)
    started = time.monotonic()
    try:
        backup_database(config.server.db_path, dest)
    except BackupError as e:
        _fail("backup failed", str(e), EXIT_FAILURE)
    elapsed_ms = round((time.monotonic() - started) * 1000)
    size = os.path.getsize(dest)
    print(f"mininq: backed up {config.server.db_path} to {dest} ({size} bytes, {elapsed_ms} ms)")


def _stop_during_start_up(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mininq` executable and of `python -m mininq`."""
    multiprocessing.freeze_support()  # first: a frozen child must not reach argparse
    # Until Sanic installs its own handlers, a stop request ends start-up with
    # exit 0: nothing has started yet that would need stopping.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_during_start_up)
    args = build_parser().parse_args(argv)
    config = _load(args)
    if args.command == "check-config":
        _check_config(config)  # as written: it shows what the user configured
    elif args.command == "backup":
        _backup(resolve_paths(config), args.dest)
    else:
        _serve(resolve_paths(config))
