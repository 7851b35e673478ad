"""Log lines: JSON and pretty formats, levels, Sanic's loggers and the access log."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import re
import select

import orjson
import pytest

from mininq.config import LoggingConfig
from mininq.logs import (
    TRACE,
    JsonFormatter,
    LoopBatchedStreamHandler,
    get_logger,
    log_event,
    sanic_log_config,
    setup_logging,
)


@pytest.fixture
def configure(capsys):
    """Apply a LoggingConfig and return a function that reads the lines written to stderr."""

    def apply(level: str = "info", fmt: str = "json"):
        setup_logging(LoggingConfig(level=level, format=fmt))
        capsys.readouterr()
        return lambda: capsys.readouterr().err.splitlines()

    yield apply
    _reset_logging()


def _reset_logging() -> None:
    """Leave no handler bound to this test's captured stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    for name in ("mininq", "sanic.root", "sanic.error", "sanic.server", "sanic.access"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def test_json_line_has_core_keys_then_fields(configure):
    lines = configure("info", "json")
    log = get_logger("mininq.engine")
    log_event(log, logging.INFO, "delivered", job="j1", queue="default", attempt=1,
              outcome="completed", duration_ms=3)  # fmt: skip
    [line] = lines()
    record = orjson.loads(line)
    assert list(record)[:4] == ["ts", "level", "logger", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    assert record["level"] == "info"
    assert record["logger"] == "mininq.engine"
    assert record["event"] == "delivered"
    assert record["job"] == "j1" and record["attempt"] == 1 and record["duration_ms"] == 3


def test_fields_never_hide_core_keys_and_odd_values_serialize(configure):
    lines = configure("info", "json")
    log_event(get_logger("mininq.api"), logging.WARNING, "odd", level="x", obj=object(), n=None)
    record = orjson.loads(lines()[0])
    assert record["level"] == "warn"
    assert record["field_level"] == "x"
    assert record["obj"].startswith("<object") and record["n"] is None


def test_pretty_line(configure):
    lines = configure("info", "pretty")
    log_event(get_logger("mininq.engine"), logging.INFO, "delivered", job="j1", queue="q",
              attempt=1, outcome="completed", duration_ms=3, error="HTTP 503: busy")  # fmt: skip
    [line] = lines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO  delivered job=j1 queue=q attempt=1 outcome=completed "
        r'duration_ms=3 error="HTTP 503: busy"',
        line,
    ), line


def test_levels_filter_and_trace_exists(configure):
    lines = configure("warn", "json")
    log = get_logger("mininq.engine")
    log_event(log, logging.INFO, "hidden")
    log_event(log, logging.ERROR, "shown")
    assert [orjson.loads(x)["event"] for x in lines()] == ["shown"]

    lines = configure("trace", "json")
    log_event(log, TRACE, "tiny")
    assert orjson.loads(lines()[0])["level"] == "trace"


def test_disabled_level_skips_the_work(configure):
    configure("info", "json")

    class Expensive:
        def __str__(self):
            raise AssertionError("formatted although the level is off")

    log_event(get_logger("mininq.engine"), logging.DEBUG, "hidden", thing=Expensive())


def test_exceptions_stay_on_one_json_line(configure):
    lines = configure("info", "json")
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("mininq.engine").exception("loop crashed")
    [line] = lines()
    record = orjson.loads(line)
    assert record["level"] == "error" and "ValueError: boom" in record["exc"]


def test_sanic_messages_use_our_format_and_access_log_is_silent(configure):
    lines = configure("info", "json")
    logging.getLogger("sanic.root").info("\x1b[1mStarting worker\x1b[0m [123]")
    logging.getLogger("sanic.access").info("GET / 200")
    logging.getLogger("some.library").info("chatter")  # below warn for libraries
    logging.getLogger("some.library").warning("careful")
    records = [orjson.loads(x) for x in lines()]
    assert [(r["logger"], r["event"]) for r in records] == [
        ("sanic.root", "Starting worker [123]"),
        ("some.library", "careful"),
    ]


def test_sanic_log_config_is_a_valid_dict_config():
    config = sanic_log_config(LoggingConfig(level="debug", format="pretty"))
    logging.config.dictConfig(config)  # raises if malformed
    assert logging.getLogger("mininq").getEffectiveLevel() == logging.DEBUG
    assert logging.getLogger("sanic.access").getEffectiveLevel() == logging.CRITICAL
    _reset_logging()


class RecordingStream(io.StringIO):
    """A text stream that keeps each write() separately, as the system calls
    the handler would make on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _batched_logger(stream: RecordingStream) -> logging.Logger:
    handler = LoopBatchedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mininq.test_batched")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_lines_of_one_loop_pass_are_written_together() -> None:
    stream = RecordingStream()
    logger = _batched_logger(stream)

    async def main() -> list[str]:
        for i in range(3):
            log_event(logger, logging.INFO, "delivery", n=i)
        before = list(stream.writes)
        await asyncio.sleep(0)  # the pass ends
        return before

    assert asyncio.run(main()) == []
    assert len(stream.writes) == 1, stream.writes
    assert [orjson.loads(line)["n"] for line in stream.writes[0].splitlines()] == [0, 1, 2]


def test_warnings_and_lines_outside_a_loop_are_written_at_once_in_order() -> None:
    stream = RecordingStream()
    logger = _batched_logger(stream)
    log_event(logger, logging.INFO, "outside")
    assert len(stream.writes) == 1

    async def main() -> None:
        log_event(logger, logging.INFO, "first")
        log_event(logger, logging.WARNING, "second")
        assert [orjson.loads(x)["event"] for x in "".join(stream.writes).splitlines()] == [
            "outside", "first", "second"
        ]

    asyncio.run(main())


def test_batched_writes_hold_whole_lines_within_pipe_buf() -> None:
    """Lines from two processes sharing a pipe interleave only at write boundaries."""
    stream = RecordingStream()
    logger = _batched_logger(stream)
    sizes = [10, 300, 2000, 5000, 40, 4000, 1]

    async def main() -> None:
        for i, size in enumerate(sizes * 5):
            log_event(logger, logging.INFO, "line", n=i, text="é" * size)
        await asyncio.sleep(0)

    asyncio.run(main())
    lines = "".join(stream.writes).splitlines()
    assert [orjson.loads(line)["n"] for line in lines] == list(range(len(sizes) * 5))
    for text in stream.writes:
        assert text.endswith("\n")
        # Only a line longer than PIPE_BUF on its own may exceed it.
        assert len(text.encode()) <= select.PIPE_BUF or text.count("\n") == 1, len(text.encode())
    assert len(stream.writes) < len(lines)
