"""Logging: one line per event on stderr, as JSON or in a pretty form (the
default, `auto`, is pretty on a terminal and JSON otherwise).

mininq code logs through `log_event(logger, level, "delivery", job=..., ...)`;
the fields travel on the record and the formatter writes them out:

    {"ts":"2026-11-27T10:00:01.234Z","level":"info","logger":"mininq.engine","event":"delivery","job":"..."}
    10:00:01.234 INFO  delivery job=... queue=default attempt=1 outcome=completed status=200 duration_ms=3

Sanic's own loggers are routed through the same handler, and its access log
is silenced. `sanic_log_config` is the one description of all this; both
`setup_logging` (our processes) and `Sanic(..., log_config=...)` (Sanic's
processes, which re-run dictConfig when they build the app) apply it.
Timestamps are UTC in both formats.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import re
import select
import sys
import time
from typing import Any

import orjson

from mininq.clock import to_rfc3339
from mininq.config import LoggingConfig

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_LEVEL_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}

_FIELDS = "mininq_fields"  # the LogRecord attribute that carries log_event's fields
_CORE_KEYS = frozenset({"ts", "level", "logger", "event"})
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Sanic colours some messages on a terminal

SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.server", "sanic.websockets")


def get_logger(name: str) -> logging.Logger:
    """The logger of one part of mininq (`mininq.engine`, `mininq.api`...): its
    name is on every log line, so parts use a fixed name rather than `__name__`."""
    return logging.getLogger(name)


def log_event(logger: logging.Logger, level: int, event: str, /, **fields: Any) -> None:
    """Log one event with structured fields; costs one check when the level is off."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields})


def _level_name(levelno: int) -> str:
    return _LEVEL_NAMES.get(levelno) or logging.getLevelName(levelno).lower()


def _event(record: logging.LogRecord) -> str:
    message = record.getMessage()
    if "\x1b" in message:
        message = _ANSI.sub("", message)
    return message


class JsonFormatter(logging.Formatter):
    """One orjson object per line: ts, level, logger, event, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": to_rfc3339(int(record.created * 1000)),
            "level": _level_name(record.levelno),
            "logger": record.name,
            "event": _event(record),
        }
        for key, value in getattr(record, _FIELDS, {}).items():
            # A field never hides a core key: it is kept under another name.
            out[f"field_{key}" if key in _CORE_KEYS else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _pretty_value(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c in value for c in ' ="\n\t'):
            return value
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class PrettyFormatter(logging.Formatter):
    """`10:00:01.234 INFO  event key=value ...` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        secs, ms = divmod(int(record.created * 1000), 1000)
        parts = [
            time.strftime("%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}",
            f"{_level_name(record.levelno).upper():<5}",
            _event(record),
        ]
        for key, value in getattr(record, _FIELDS, {}).items():
            parts.append(f"{key}={_pretty_value(value)}")
        if not record.name.startswith("mininq"):
            parts.append(f"logger={record.name}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class LoopBatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes the info and debug lines logged during one
    pass of the running event loop together, at the end of the pass.

    The engine logs every delivery, and one write per line (each a system
    call) was about a tenth of its time per delivery. A write holds whole lines
    and at most PIPE_BUF bytes, so that lines from the engine and the HTTP
    worker, which share stderr, never interleave within a line on a pipe.
    Warnings and errors, lines logged outside an event loop, and anything
    pending before them go out at once.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._flush_scheduled = False

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record) + self.terminator
            size = len(line.encode())
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if self._pending_bytes + size > select.PIPE_BUF:
                self._write_pending()
            self._pending.append(line)
            self._pending_bytes += size
            if loop is None or record.levelno >= logging.WARNING:
                self._write_pending()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self.flush)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)

    def _write_pending(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self.stream.write(text)
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_scheduled = False
            if self.stream and hasattr(self.stream, "flush"):
                self._write_pending()


def wants_json(log_format: str) -> bool:
    """`auto` is JSON unless stderr is a terminal (a person is reading); every
    process of the server shares that stderr, so each decides the same."""
    if log_format == "auto":
        try:
            return not sys.stderr.isatty()
        except (AttributeError, ValueError):  # no stderr, or a closed one
            return True
    return log_format == "json"


def sanic_log_config(cfg: LoggingConfig, batch_lines: bool = False) -> dict[str, Any]:
    """A logging.config.dictConfig dict: pass it as Sanic(name, log_config=...).

    mininq.* and Sanic's loggers propagate to one stderr handler on the root
    logger; other libraries reach it at WARNING and above. sanic.access goes
    to a NullHandler. `batch_lines` (the engine) writes the lines of one event
    loop pass together, see LoopBatchedStreamHandler.
    """
    level = LEVELS[cfg.level]
    formatter = JsonFormatter if wants_json(cfg.format) else PrettyFormatter
    loggers: dict[str, Any] = {
        "mininq": {"level": level, "handlers": [], "propagate": True},
        "sanic.access": {"level": logging.CRITICAL, "handlers": ["null"], "propagate": False},
    }
    for name in SANIC_LOGGERS:
        # Sanic's websocket logger is chatty at info; keep it at warn unless asked for less.
        sanic_level = max(level, logging.WARNING) if name == "sanic.websockets" else level
        loggers[name] = {"level": sanic_level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mininq": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": (
                    f"{__name__}.{LoopBatchedStreamHandler.__name__}"
                    if batch_lines else "logging.StreamHandler"
                ),
                "formatter": "mininq",
                "stream": "ext://sys.stderr",
            },
            "null": {"class": "logging.NullHandler"},
        },
        "loggers": loggers,
        "root": {"level": max(level, logging.WARNING), "handlers": ["stderr"]},
    }


def setup_logging(cfg: LoggingConfig, batch_lines: bool = False) -> None:
    """Configure logging for this process (the CLI, the engine process, tests)."""
    logging.config.dictConfig(sanic_log_config(cfg, batch_lines))
    logging.captureWarnings(True)
    _lean_records()


def _lean_records() -> None:
    """Skip what our formatters never print: the caller's file and line (a stack
    walk per record), thread and process names. The engine logs every delivery,
    and this takes a third off each line's cost (logging HOWTO, "Optimization")."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
