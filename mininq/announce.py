"""The start-up line: where mininq listens, which database it uses, where the
dashboard is and the limits in effect, so a user needn't guess any of them.

The API token and the signing secret are never printed, only whether they are set.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from mininq import __version__
from mininq.config import Config, mask_url
from mininq.logs import get_logger, log_event

log = get_logger("mininq.app")

# A server listening on every interface is reached locally through loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass  # a name, not an address
    return f"{host}:{port}"


def base_url(host: str, port: int) -> str:
    """The URL a browser on this machine uses to reach `host:port`."""
    return "http://" + host_port(_WILDCARDS.get(host, host), port)


def startup_fields(config: Config) -> dict[str, Any]:
    """The fields of the start-up line."""
    server, worker, defaults = config.server, config.worker, config.defaults
    url = base_url(server.host, server.port)
    return {
        "version": __version__,
        "listen": host_port(server.host, server.port),
        "url": url,
        "dashboard": f"{url}/dashboard",
        "db": mask_url(server.database_url) if server.database_url
        else os.path.abspath(server.db_path),
        "api_token": "set" if server.api_token else "not set",
        "signing": "on" if config.webhooks.signing_secret else "off",
        "concurrency": worker.concurrency,
        "queue_max_concurrency": defaults.queue_max_concurrency,
        "queues": ",".join(worker.queues) or "all",
        "max_retries": defaults.max_retries,
        "timeout_ms": defaults.timeout_ms,
        "max_body_bytes": server.max_body_bytes,
        "max_result_bytes": config.webhooks.max_result_bytes,
        "retention_days": worker.retention_days,
    }


def announce(config: Config) -> None:
    """Log the start-up line (once, from Sanic's main process, after it bound the port)."""
    log_event(log, logging.INFO, "mininq listening", **startup_fields(config))
