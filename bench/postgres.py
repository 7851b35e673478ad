"""mininq on PostgreSQL: W1 and W2 with one node, W1 with two nodes sharing
the database, each against a fresh database on the server named by
MININQ_BENCH_DATABASE_URL (default the local one, trust auth).

Every node, PostgreSQL itself, the receiver and the load client share this
machine's cores, so two nodes here measure coordination through the database,
not added capacity.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from bench import mininq_runs
from bench.common import job_body, run_json
from bench.receiver import Receiver

URL_ENV = "MININQ_BENCH_DATABASE_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get(URL_ENV) or DEFAULT_URL


async def _execute(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def unavailable() -> str | None:
    """Why the PostgreSQL rows can't run here, or None."""
    try:
        asyncio.run(_execute(server_url(), "SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any failure means "no server"
        return f"no PostgreSQL at {URL_ENV} ({server_url()}): {type(e).__name__}: {e}"
    return None


@contextmanager
def fresh_database() -> Iterator[str]:
    url = server_url()
    name = f"mininq_bench_{secrets.token_hex(6)}"
    asyncio.run(_execute(url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def with_nodes(tmp: str, name: str, count: int,
               fn: Callable[[list[mininq_runs.MininqServer]], dict]) -> dict:
    """Run fn against `count` fresh nodes on a fresh database; stop them after."""
    with fresh_database() as url:
        nodes: list[mininq_runs.MininqServer] = []
        try:
            for i in range(count):
                nodes.append(mininq_runs.start_server(os.path.join(tmp, f"{name}-{i}"),
                                                      database_url=url))
            return fn(nodes)
        finally:
            for node in nodes:
                node.stop()


def throughput(nodes: list[mininq_runs.MininqServer], receiver: Receiver, queue: str,
               count: int, connections: int = 32) -> dict:
    """W1 over the nodes: single POSTs split evenly, one load client per node at once."""
    nodes[0].create_queue(queue)
    receiver.reset()
    body = job_body(receiver.url, queue)
    share = count // len(nodes)

    def load(node: mininq_runs.MininqServer) -> dict:
        return run_json("bench.loadclient", {
            "mode": "burst", "port": node.port, "path": "/jobs", "bodies": [body],
            "count": share, "connections": connections // len(nodes),
        })

    with ThreadPoolExecutor(len(nodes)) as pool:
        results = list(pool.map(load, nodes))
    for result in results:
        mininq_runs._check_statuses(result)
    jobs = share * len(nodes)
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    stats = receiver.wait_for(jobs, timeout=900)
    receiver.reset()
    delivered = stats["count"] >= jobs
    return {
        "problem": None if delivered else f"only {stats['count']} of {jobs} jobs delivered",
        "jobs": jobs, "nodes": len(nodes),
        "enqueue_rate": jobs / (end - start),
        "e2e_rate": jobs / (stats["last"] - start) if delivered else None,
        "delivered": stats["count"],
    }
