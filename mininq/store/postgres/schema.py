"""The PostgreSQL schema as an ordered list of migrations.

`mininq_schema.version` holds the number applied. Nodes starting together
take `pg_advisory_lock(MIGRATION_LOCK)` first, so exactly one applies each
migration; a database whose version is beyond this list was written by a
newer mininq and is refused. Times are bigint epoch milliseconds, as in the
SQLite backend, so rows have one shape whichever backend holds them;
heartbeats use `timestamptz` because they are on database time (`now()`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from mininq.destination import destination_of
from mininq.metrics.history import COLUMNS

MIGRATION_LOCK = 0x6D696E696E71  # "mininq"
CLEANUP_LOCK = 0x6D696E696E72



async def _backfill_destinations(conn: asyncpg.Connection) -> None:
    """The destination of every job still to deliver (computed in Python, as at creation)."""
    rows = await conn.fetch(
        "SELECT id, callback_url FROM jobs WHERE status IN ('pending', 'running')")
    if rows:
        await conn.execute(
            "UPDATE jobs SET destination = d.destination "
            "FROM unnest($1::text[], $2::text[]) AS d(id, destination) WHERE jobs.id = d.id",
            [r["id"] for r in rows], [destination_of(r["callback_url"]) for r in rows])


MIGRATIONS: list[tuple[str, list[str | Callable[[asyncpg.Connection], Awaitable[None]]]]] = [
    (
        "initial schema",
        [
            """CREATE TABLE queues (
                name text PRIMARY KEY,
                max_concurrency integer,
                rate_limit_rps double precision,
                rate_limit_burst double precision,
                max_retries integer,
                retry_backoff text,
                base_delay_ms bigint,
                max_delay_ms bigint,
                timeout_ms bigint,
                paused boolean NOT NULL DEFAULT false,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                -- Jobs of the queue running on any node: moved by every
                -- statement that moves a job into or out of running.
                in_flight integer NOT NULL DEFAULT 0,
                -- The queue's token bucket, shared by every node: tokens as of
                -- tokens_at (database time, ms); NULL is a full bucket.
                tokens double precision,
                tokens_at bigint
            )""",
            # Dead tuples pile up fast in a queue table (every claim and outcome
            # is an UPDATE): vacuum after 1% changed instead of 20%, and leave
            # room in each page so those updates stay on the page (HOT).
            """CREATE TABLE jobs (
                id text PRIMARY KEY,
                queue_name text NOT NULL,
                status text NOT NULL,
                priority integer NOT NULL DEFAULT 0,
                callback_url text NOT NULL,
                payload text NOT NULL,
                headers text,
                max_retries integer NOT NULL,
                retry_backoff text NOT NULL,
                base_delay_ms bigint NOT NULL,
                max_delay_ms bigint NOT NULL,
                timeout_ms bigint NOT NULL,
                idempotency_key text,
                attempt integer NOT NULL DEFAULT 0,
                visible_at bigint NOT NULL,
                lease_until bigint,
                started_at bigint,
                completed_at bigint,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                result text,
                last_error text,
                schedule_id text,
                node_id text
            ) WITH (fillfactor = 85, autovacuum_vacuum_scale_factor = 0.01,
                    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02,
                    autovacuum_vacuum_insert_scale_factor = 0.05)""",
            # The claim's ORDER BY within a queue: priority, due time, creation.
            """CREATE INDEX jobs_claim ON jobs (queue_name, priority DESC, visible_at, id)
               WHERE status = 'pending'""",
            "CREATE INDEX jobs_due ON jobs (queue_name, visible_at) WHERE status = 'pending'",
            """CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key)
               WHERE idempotency_key IS NOT NULL""",
            "CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status = 'running'",
            # Running jobs per node: its in_flight, and the rescue of a dead one.
            "CREATE INDEX jobs_node ON jobs (node_id) WHERE status = 'running'",
            "CREATE INDEX jobs_queue_status ON jobs (queue_name, status, id)",
            "CREATE INDEX jobs_schedule ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL",
            """CREATE INDEX jobs_finished ON jobs (status, updated_at)
               WHERE status IN ('completed', 'dead', 'cancelled')""",
            """CREATE TABLE attempts (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                job_id text NOT NULL,
                attempt integer NOT NULL,
                started_at bigint NOT NULL,
                duration_ms bigint NOT NULL,
                status_code integer,
                outcome text NOT NULL,
                error text
            ) WITH (autovacuum_vacuum_scale_factor = 0.02)""",
            "CREATE INDEX attempts_job ON attempts (job_id, id)",
            """CREATE TABLE schedules (
                id text PRIMARY KEY,
                cron_expression text NOT NULL,
                timezone text NOT NULL,
                callback_url text NOT NULL,
                queue_name text NOT NULL,
                payload text NOT NULL,
                headers text,
                max_retries integer,
                timeout_ms bigint,
                enabled boolean NOT NULL,
                last_run_at bigint,
                next_run_at bigint,
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL
            )""",
            "CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled",
            # Counts and counters are split over shards (a random one per
            # transaction) and summed when read: exact, and no single row that
            # every insert of every node must update in turn.
            """CREATE TABLE job_counts (
                queue_name text NOT NULL,
                status text NOT NULL,
                shard smallint NOT NULL,
                n bigint NOT NULL,
                PRIMARY KEY (queue_name, status, shard)
            )""",
            """CREATE TABLE counters (
                name text NOT NULL,
                queue_name text NOT NULL,
                key text NOT NULL,
                shard smallint NOT NULL,
                value double precision NOT NULL,
                PRIMARY KEY (name, queue_name, key, shard)
            )""",
            """CREATE TABLE nodes (
                id text PRIMARY KEY,
                hostname text NOT NULL,
                pid integer NOT NULL,
                version text NOT NULL,
                started_at bigint NOT NULL,
                last_seen_at timestamptz NOT NULL,
                in_flight integer NOT NULL DEFAULT 0,
                rescued_at timestamptz
            )""",
        ],
    ),
    (
        "destinations",
        [
            # scheme://host:port of callback_url (mininq/destination.py), so that
            # a claim can leave out a destination's jobs by an indexed column.
            "ALTER TABLE jobs ADD COLUMN destination text NOT NULL DEFAULT ''",
            _backfill_destinations,
            # The claim order per queue as before; destination rides in the
            # index so that rows of a left-out destination are skipped there.
            "DROP INDEX jobs_claim",
            """CREATE INDEX jobs_claim ON jobs (queue_name, priority DESC, visible_at, id)
               INCLUDE (destination) WHERE status = 'pending'""",
            "DROP INDEX jobs_due",
            """CREATE INDEX jobs_due ON jobs (queue_name, visible_at) INCLUDE (destination)
               WHERE status = 'pending'""",
            # One destination's jobs in claim order per queue (a claim of a
            # destination with little room), and its pending count.
            """CREATE INDEX jobs_destination ON jobs (destination, queue_name, priority DESC,
                   visible_at, id) WHERE status = 'pending'""",
            # Each node's view of its destinations, written by its engine with
            # its outcome batches, read by GET /destinations. `resets` counts
            # POST /destinations/reset; each engine applies the new ones.
            """CREATE TABLE destinations (
                node text NOT NULL,
                destination text NOT NULL,
                state text NOT NULL,
                "limit" integer NOT NULL,
                in_flight integer NOT NULL,
                consecutive_failures integer NOT NULL,
                last_status integer,
                last_error text,
                open_until bigint,
                delivered bigint NOT NULL,
                failed bigint NOT NULL,
                seen_at bigint NOT NULL,
                resets integer NOT NULL DEFAULT 0,
                PRIMARY KEY (node, destination)
            )""",
            "CREATE INDEX destinations_seen ON destinations (seen_at)",
        ],
    ),
    (
        "per-minute history",
        [
            # Rows per minute and queue (SPEC §11) split over shards like the
            # counts, added to by every node and summed when read (history.py);
            # columns as in mininq.metrics.history.COLUMNS (d0..dN: duration buckets).
            """CREATE TABLE history (
                minute bigint NOT NULL,
                queue_name text NOT NULL,
                shard smallint NOT NULL,
                """ + ",\n                ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in COLUMNS)
            + """,
                PRIMARY KEY (minute, queue_name, shard)
            )""",
        ],
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer mininq."""


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema up to date under the migration lock; returns the version."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS mininq_schema (version integer NOT NULL)")
        version = await conn.fetchval("SELECT version FROM mininq_schema")
        if version is None:
            await conn.execute("INSERT INTO mininq_schema (version) VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database was written by a newer mininq (schema version {version}; "
                f"this mininq knows up to {SCHEMA_VERSION}): upgrade mininq"
            )
        for number, (_name, statements) in enumerate(MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                for statement in statements:
                    if callable(statement):
                        await statement(conn)
                    else:
                        await conn.execute(statement)
                await conn.execute("UPDATE mininq_schema SET version = $1", number)
        return SCHEMA_VERSION
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
