"""Entry point of the Sanic-managed engine process (must be importable and
picklable by name: Sanic starts it with multiprocessing spawn)."""

from __future__ import annotations

import asyncio

from mininq.config import Config


def run_engine(settings: Config, wake_address: str) -> None:
    """Sanic passes a `config` kwarg to targets that take one on restart, so this
    parameter is named `settings`."""
    from mininq.engine.runner import Engine
    from mininq.logs import setup_logging

    setup_logging(settings.logging)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop ships with sanic on Linux
        runner = asyncio.run
    runner(Engine(settings, wake_address).run())
