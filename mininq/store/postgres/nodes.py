"""SQL for nodes: heartbeats on database time, and the rescue of the jobs of
nodes that stopped beating."""

from __future__ import annotations

import asyncpg

from mininq.nodes import NodeInfo

DEAD_KEPT = "1 hour"  # a dead node stays listed (alive false) this long

_REGISTER = """
INSERT INTO nodes (id, hostname, pid, version, started_at, last_seen_at, in_flight)
VALUES ($1, $2, $3, $4, $5, now(), 0)
ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), rescued_at = NULL
"""

_BEAT = """
UPDATE nodes SET last_seen_at = now(), rescued_at = NULL,
    in_flight = (SELECT count(*) FROM jobs WHERE node_id = $1 AND status = 'running')
WHERE id = $1
"""

# Each dead node is taken by one live node (SKIP LOCKED) and marked rescued.
_DEAD = """
UPDATE nodes SET rescued_at = now(), in_flight = 0
WHERE id IN (
    SELECT id FROM nodes
    WHERE last_seen_at < now() - make_interval(secs => $1) AND rescued_at IS NULL AND id <> $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


async def register(conn: asyncpg.Connection, node: NodeInfo) -> None:
    await conn.execute(_REGISTER, node.id, node.hostname, node.pid, node.version,
                       node.started_at)


async def beat(conn: asyncpg.Connection, node_id: str) -> None:
    await conn.execute(_BEAT, node_id)
    await conn.execute(f"DELETE FROM nodes WHERE last_seen_at < now() - interval '{DEAD_KEPT}'")


async def dead_nodes(conn: asyncpg.Connection, node_id: str, timeout_s: float) -> list[str]:
    """Mark the nodes silent for `timeout_s` as rescued; returns their ids."""
    return [r["id"] for r in await conn.fetch(_DEAD, float(timeout_s), node_id)]


async def leave(conn: asyncpg.Connection, node_id: str) -> None:
    """A clean stop: the node leaves the list."""
    await conn.execute("DELETE FROM nodes WHERE id = $1", node_id)


async def list_nodes(conn: asyncpg.Connection, me: str, timeout_s: float) -> list[dict]:
    rows = await conn.fetch(
        """SELECT id, hostname, pid, version, started_at,
               (extract(epoch FROM last_seen_at) * 1000)::bigint AS last_seen_at, in_flight,
               (last_seen_at >= now() - make_interval(secs => $1) AND rescued_at IS NULL)
                   AS alive
           FROM nodes ORDER BY started_at, id""", float(timeout_s))
    return [{**dict(r), "self": r["id"] == me} for r in rows]
