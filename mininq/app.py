"""The Sanic application and how `mininq serve` starts it.

Process model: Sanic's main process runs the migrations, then starts one
HTTP worker (this app) and one managed process, the engine
(`mininq.engine.process.run_engine`). The HTTP worker watches the engine's
state and asks Sanic to restart it if it ever dies; Sanic would not on its own.

Sanic's main process builds the app as well (through the AppLoader) but only
runs its main-process listeners: it gets the base app, without the routes and
what they import (`mininq.http_process`), which keeps about 5 MB out of a
process that lives as long as the server.
"""

from __future__ import annotations

import logging
import os
import tempfile
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from mininq import sanic_fixes, tempdirs
from mininq.announce import announce
from mininq.config import Config
from mininq.engine.process import ENGINE, run_engine
from mininq.logs import get_logger, log_event, sanic_log_config
from mininq.nodes import NodeInfo
from mininq.store import backend_for

log = get_logger("mininq.app")


def create_app(config: Config, node: NodeInfo | None = None) -> Sanic:
    """The whole app, as the HTTP worker serves it."""
    from mininq.http_process import add_http  # not in the main process: see above

    node = node or NodeInfo.this_process()
    app = _base_app(config, node)
    add_http(app, config, node)
    return app


def _base_app(config: Config, node: NodeInfo) -> Sanic:
    """The settings every process shares and the listener that starts the engine."""
    app = Sanic("mininq", log_config=sanic_log_config(config.logging))
    app.config.MOTD = False
    app.config.ACCESS_LOG = False
    app.config.REQUEST_MAX_SIZE = config.server.max_body_bytes
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 5.0
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.config = config

    @app.main_process_ready
    async def start_engine(app: Sanic):
        app.manager.manage(
            ENGINE,
            run_engine,
            {"settings": config, "node": node},
            restartable=True,
        )
        announce(config)  # Sanic's main process has bound the port by now

    return app


def _load_app(config: Config, node: NodeInfo) -> Sanic:
    """The AppLoader's factory: the whole app in Sanic's worker processes (Sanic
    sets SANIC_WORKER_NAME there), the base app in its main process."""
    if os.environ.get("SANIC_WORKER_NAME"):
        return create_app(config, node)
    return _base_app(config, node)


def _tidy_temp() -> None:
    """Remove what stopped instances left in the temp folder, then lock this
    instance's own folders (see `mininq.tempdirs`)."""
    bases = [tempfile.gettempdir()]
    if unpacked := tempdirs.unpacked_dir():
        bases.append(os.path.dirname(unpacked))
    removed = tempdirs.remove_leftovers(bases)
    if removed:
        log_event(log, logging.INFO, "removed temporary folders left by stopped instances",
                  folders=[r.path for r in removed],
                  mb=round(sum(r.size for r in removed) / 1e6, 1))
    tempdirs.claim()


def serve(config: Config) -> None:
    """Run mininq until SIGTERM/SIGINT: migrate, then start Sanic's processes.

    The node's identity is made here, once, so that the HTTP process and the
    engine (also after a restart of the engine) speak for the same node."""
    sanic_fixes.apply()
    # On a terminal Sanic warns that it runs "in PRODUCTION mode" and suggests
    # --debug, a flag mininq doesn't have; the start-up line says what matters.
    os.environ.setdefault("SANIC_IGNORE_PRODUCTION_WARNING", "1")
    backend_for(config.server).prepare()
    _tidy_temp()
    loader = AppLoader(factory=partial(_load_app, config, NodeInfo.this_process()))
    app = loader.load()
    app.prepare(
        host=config.server.host,
        port=config.server.port,
        workers=1,
        access_log=False,
        motd=False,
        single_process=False,
    )
    Sanic.serve(primary=app, app_loader=loader)
