"""The Sanic application and how `mininq serve` starts it.

Process model: Sanic's main process runs the migrations, then starts one
HTTP worker (this app) and one managed process, the engine
(`mininq.engine.process.run_engine`). The HTTP worker watches the engine's
state and asks Sanic to restart it if it ever dies; Sanic would not on its own.
"""

from __future__ import annotations

import asyncio
import sys
import time
from functools import partial

from sanic import Request, Sanic
from sanic.worker.loader import AppLoader

from mininq import sanic_fixes
from mininq.api import api
from mininq.api.auth import SAFE_METHODS, is_authorized, is_public, same_origin
from mininq.api.responses import error_response, handle_error
from mininq.config import Config
from mininq.engine.process import GIL_SWITCH_INTERVAL_S, run_engine
from mininq.logs import get_logger, sanic_log_config
from mininq.store import open_store, prepare_database
from mininq.wake import WakeFlag, WakeSender, address_for, engine_file

log = get_logger("mininq.app")

ENGINE = "mininq-engine"
ENGINE_PROCESS = f"Sanic-{ENGINE}-0"
ENGINE_WATCH_S = 3.0


def create_app(config: Config, wake_address: str) -> Sanic:
    app = Sanic("mininq", log_config=sanic_log_config(config.logging))
    app.config.MOTD = False
    app.config.ACCESS_LOG = False
    app.config.REQUEST_MAX_SIZE = config.server.max_body_bytes
    app.config.KEEP_ALIVE_TIMEOUT = 75
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 5.0
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.config = config
    app.blueprint(api)
    try:
        from mininq.dashboard import dashboard
    except ImportError:  # the dashboard package is optional while it is being built
        dashboard = None
    if dashboard is not None:
        app.blueprint(dashboard)
    app.error_handler.add(Exception, handle_error)

    token = config.server.api_token

    @app.on_request
    async def authorize(request: Request):
        if request.method not in SAFE_METHODS and not same_origin(request):
            return error_response(
                403, "origin: cross-site requests can't change mininq (the Origin header "
                f"{request.headers.get('origin')!r} is not this server)"
            )
        if token and not is_public(request.path) and not is_authorized(request, token):
            if request.path.startswith("/dashboard") and hasattr(app.ctx, "sign_in_page"):
                return app.ctx.sign_in_page(request)
            return error_response(401, "authorization: a valid bearer token is required")

    @app.before_server_start
    async def open_resources(app: Sanic):
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # see engine/process.py
        app.ctx.started = time.monotonic()
        app.ctx.store = await open_store(config.server.db_path, config.defaults)
        app.ctx.waker = WakeSender(wake_address, WakeFlag(engine_file(config.server.db_path)))
        app.ctx.engine_up = partial(_engine_up, app)

    @app.after_server_start
    async def watch_engine(app: Sanic):
        app.add_task(_watch_engine(app), name="watch-engine")

    @app.before_server_stop
    async def stop_watching(app: Sanic):
        await app.cancel_task("watch-engine", raise_exception=False)

    @app.after_server_stop
    async def close_resources(app: Sanic):
        app.ctx.waker.close()
        await app.ctx.store.close()

    @app.main_process_ready
    async def start_engine(app: Sanic):
        app.manager.manage(
            ENGINE, run_engine, {"settings": config, "wake_address": wake_address},
            restartable=True,
        )

    return app


def _engine_state(app: Sanic) -> str | None:
    try:
        return app.m.workers.get(ENGINE_PROCESS, {}).get("state")
    except Exception:  # noqa: BLE001 - the manager is gone (shutting down) or absent
        return None


def _engine_up(app: Sanic) -> bool:
    return _engine_state(app) in ("STARTING", "STARTED", "ACKED", "JOINED", "RESTARTING")


async def _watch_engine(app: Sanic) -> None:
    """Restart the engine if its process died (Sanic marks it FAILED and stops there).

    The state lives in Sanic's manager process: each read is a blocking round
    trip, so it runs in a thread, off the event loop."""
    while True:
        await asyncio.sleep(ENGINE_WATCH_S)
        if await asyncio.to_thread(_engine_state, app) == "FAILED":
            log.error("the engine process died; restarting it")
            try:
                app.m.restart(ENGINE_PROCESS)
            except Exception:
                log.exception("could not restart the engine process")


def serve(config: Config) -> None:
    """Run mininq until SIGTERM/SIGINT: migrate, then start Sanic's processes."""
    sanic_fixes.apply()
    prepare_database(config.server.db_path)
    loader = AppLoader(factory=partial(create_app, config, address_for(config.server.db_path)))
    app = loader.load()
    app.prepare(
        host=config.server.host, port=config.server.port, workers=1,
        access_log=False, motd=False, single_process=False,
    )
    Sanic.serve(primary=app, app_loader=loader)
