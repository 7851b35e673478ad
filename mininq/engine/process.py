"""Entry point of the Sanic-managed engine process (must be importable and
picklable by name: Sanic starts it with multiprocessing spawn)."""

from __future__ import annotations

import asyncio
import os

from mininq.config import Config
from mininq.nodes import NodeInfo

# The name it is managed under; Sanic calls the process "Sanic-<name>-<index>".
ENGINE = "mininq-engine"
ENGINE_PROCESS = f"Sanic-{ENGINE}-0"

# The engine runs at a lower CPU priority than the HTTP API: when both want the
# CPU, accepting jobs (a caller waits for the 201) comes before delivering
# them (durable, they can wait a moment). On two cores this raised single-POST
# enqueue under full delivery load by about 40 % and end-to-end by 20 %.
ENGINE_NICE = 10


def run_engine(settings: Config, node: NodeInfo) -> None:
    """Sanic passes a `config` kwarg to targets that take one on restart, so this
    parameter is named `settings`."""
    try:
        _run(settings, node)
    except KeyboardInterrupt:  # stopped while still starting, before our handlers
        pass


def _run(settings: Config, node: NodeInfo) -> None:
    from mininq.engine.runner import Engine
    from mininq.logs import setup_logging

    setup_logging(settings.logging, batch_lines=True)
    os.nice(ENGINE_NICE)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with sanic on Linux
        runner = asyncio.run
    runner(Engine(settings, node).run())
