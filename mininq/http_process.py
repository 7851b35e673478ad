"""What the HTTP process adds to the app: the API, the dashboard, the auth hook,
the store, the engine's wake-up sender and the engine watch.

Only the HTTP worker imports this module (through `mininq.app.create_app`):
Sanic's main process loads the app too but serves no requests, and the API,
the dashboard (Jinja2) and the async store would only cost it memory.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

from sanic import Request, Sanic

from mininq.api import api
from mininq.api.auth import SAFE_METHODS, is_authorized, is_public, same_origin
from mininq.api.responses import error_response, handle_error
from mininq.config import Config
from mininq.dashboard import dashboard
from mininq.egress import EgressPolicy
from mininq.engine.process import ENGINE_PROCESS
from mininq.logs import get_logger
from mininq.nodes import NodeInfo
from mininq.store import backend_for

log = get_logger("mininq.app")  # the name its log lines have always carried

ENGINE_WATCH_S = 3.0


def add_http(app: Sanic, config: Config, node: NodeInfo) -> None:
    """Register the routes, the auth hook and the HTTP worker's listeners on `app`."""
    app.blueprint(api)
    app.blueprint(dashboard)
    app.error_handler.add(Exception, handle_error)

    token = config.server.api_token

    @app.on_request
    async def authorize(request: Request):
        if request.method not in SAFE_METHODS and not same_origin(request):
            return error_response(
                403,
                "origin: cross-site requests can't change mininq (the Origin header "
                f"{request.headers.get('origin')!r} is not this server)",
            )
        if token and not is_public(request.path) and not is_authorized(request, token):
            if request.path.startswith("/dashboard") and hasattr(app.ctx, "sign_in_page"):
                return app.ctx.sign_in_page(request)
            return error_response(401, "authorization: a valid bearer token is required")

    @app.before_server_start
    async def open_resources(app: Sanic):
        app.ctx.started = time.monotonic()
        backend = backend_for(config.server)
        app.ctx.node = node
        app.ctx.backend_name = backend.name
        app.ctx.store = await backend.open_store(config.defaults, node.id)
        app.ctx.waker = backend.waker(app.ctx.store)
        app.ctx.egress = EgressPolicy.from_config(config.webhooks)
        app.ctx.engine_up = partial(_engine_up, app)

    @app.after_server_start
    async def watch_engine(app: Sanic):
        # A plain task: Sanic's add_task logs a warning when its task is cancelled,
        # which would be every stop.
        app.ctx.engine_watch = asyncio.get_running_loop().create_task(_watch_engine(app))

    @app.before_server_stop
    async def stop_watching(app: Sanic):
        app.ctx.engine_watch.cancel()
        await asyncio.gather(app.ctx.engine_watch, return_exceptions=True)

    @app.after_server_stop
    async def close_resources(app: Sanic):
        await app.ctx.waker.close()
        await app.ctx.store.close()


def _engine_state(app: Sanic) -> str | None:
    """The engine process's state as Sanic's main process keeps it (see
    `sanic_fixes`). Each read is a blocking round trip to that process: call it
    in a thread."""
    try:
        return app.m.workers.get(ENGINE_PROCESS, {}).get("state")
    except Exception:  # noqa: BLE001 - the manager is gone (shutting down) or absent
        return None


async def _engine_up(app: Sanic) -> bool:
    state = await asyncio.to_thread(_engine_state, app)
    return state in ("STARTING", "STARTED", "ACKED", "JOINED", "RESTARTING")


async def _watch_engine(app: Sanic) -> None:
    """Restart the engine if its process died (Sanic marks it FAILED and stops there)."""
    while True:
        await asyncio.sleep(ENGINE_WATCH_S)
        if await asyncio.to_thread(_engine_state, app) == "FAILED":
            log.error("the engine process died; restarting it")
            try:
                app.m.restart(ENGINE_PROCESS)
            except Exception:
                log.exception("could not restart the engine process")
