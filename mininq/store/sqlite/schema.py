"""The SQLite schema as an ordered list of migrations, applied on start.

`PRAGMA user_version` holds the number of migrations applied. A database
written by a newer mininq (user_version beyond this list) is refused. The
second migration sets `PRAGMA application_id`, the mark that tells a mininq
file from any other (see identity.py, which checks it before this runs).
Times are integer epoch milliseconds so that "due", "expired" and "older
than" questions are index range scans.
"""

from __future__ import annotations

import sqlite3

from mininq.destination import destination_of
from mininq.metrics.history import COLUMNS
from mininq.store.errors import DatabaseRefused
from mininq.store.sqlite.identity import MININQ_APPLICATION_ID

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "initial schema",
        [
            """CREATE TABLE queues (
                name TEXT PRIMARY KEY,
                max_concurrency INTEGER,
                rate_limit_rps REAL,
                rate_limit_burst REAL,
                max_retries INTEGER,
                retry_backoff TEXT,
                base_delay_ms INTEGER,
                max_delay_ms INTEGER,
                timeout_ms INTEGER,
                paused INTEGER NOT NULL DEFAULT 0,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )""",
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                queue_name TEXT NOT NULL,
                status TEXT NOT NULL,
                priority INTEGER NOT NULL DEFAULT 0,
                callback_url TEXT NOT NULL,
                payload TEXT NOT NULL,
                headers TEXT,
                max_retries INTEGER NOT NULL,
                retry_backoff TEXT NOT NULL,
                base_delay_ms INTEGER NOT NULL,
                max_delay_ms INTEGER NOT NULL,
                timeout_ms INTEGER NOT NULL,
                idempotency_key TEXT,
                attempt INTEGER NOT NULL DEFAULT 0,
                visible_at INTEGER NOT NULL,
                lease_until INTEGER,
                started_at INTEGER,
                completed_at INTEGER,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                result TEXT,
                last_error TEXT,
                schedule_id TEXT
            )""",
            # Claim order within a queue: priority, then visible time, then creation.
            """CREATE INDEX jobs_claim ON jobs (queue_name, priority DESC, visible_at, id)
               WHERE status = 'pending'""",
            # Earliest due moment per queue: what the engine sleeps until.
            "CREATE INDEX jobs_due ON jobs (queue_name, visible_at) WHERE status = 'pending'",
            """CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key)
               WHERE idempotency_key IS NOT NULL""",
            "CREATE INDEX jobs_lease ON jobs (lease_until) WHERE status = 'running'",
            "CREATE INDEX jobs_queue_status ON jobs (queue_name, status, id)",
            "CREATE INDEX jobs_schedule ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL",
            # Retention: oldest finished jobs of one status first, without
            # scanning the rows of another status kept longer.
            """CREATE INDEX jobs_finished ON jobs (status, updated_at)
               WHERE status IN ('completed', 'dead', 'cancelled')""",
            """CREATE TABLE attempts (
                id INTEGER PRIMARY KEY,
                job_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                started_at INTEGER NOT NULL,
                duration_ms INTEGER NOT NULL,
                status_code INTEGER,
                outcome TEXT NOT NULL,
                error TEXT
            )""",
            "CREATE INDEX attempts_job ON attempts (job_id, id)",
            """CREATE TABLE schedules (
                id TEXT PRIMARY KEY,
                cron_expression TEXT NOT NULL,
                timezone TEXT NOT NULL,
                callback_url TEXT NOT NULL,
                queue_name TEXT NOT NULL,
                payload TEXT NOT NULL,
                headers TEXT,
                max_retries INTEGER,
                timeout_ms INTEGER,
                enabled INTEGER NOT NULL,
                last_run_at INTEGER,
                next_run_at INTEGER,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )""",
            "CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled = 1",
            # Monotonic counters for /metrics, by (name, queue_name, key): jobs_created
            # (key ''), deliveries (key: the outcome), delivery_seconds_bucket (key: the
            # bucket's bound as repr(float), e.g. '0.25'), delivery_seconds_sum and
            # delivery_seconds_count (key ''), and, with queue_name '' too,
            # schedule_fires and health_checks (/health's test write).
            """CREATE TABLE counters (
                name TEXT NOT NULL,
                queue_name TEXT NOT NULL,
                key TEXT NOT NULL,
                value REAL NOT NULL,
                PRIMARY KEY (name, queue_name, key)
            ) WITHOUT ROWID""",
            # Counts per queue and status (kept by the writes, see counts.py) so
            # that /metrics, /queues and the dashboard never count a million rows.
            """CREATE TABLE job_counts (
                queue_name TEXT NOT NULL,
                status TEXT NOT NULL,
                n INTEGER NOT NULL,
                PRIMARY KEY (queue_name, status)
            ) WITHOUT ROWID""",
        ],
    ),
    (
        "mark the file as mininq's, and room for /health's space check",
        [
            # Checked at start-up (identity.py) so that mininq never writes
            # into another application's database.
            f"PRAGMA application_id = {MININQ_APPLICATION_ID}",
            # /health writes and deletes a block here after a write failed
            # for want of space, to tell when there is room again.
            "CREATE TABLE room_check (id INTEGER PRIMARY KEY, filler BLOB NOT NULL)",
        ],
    ),
    (
        "per-minute history",
        [
            # One row per minute and queue (SPEC §11), kept by history.py; columns
            # as in mininq.metrics.history.COLUMNS (d0..dN: duration buckets).
            """CREATE TABLE history (
                minute INTEGER NOT NULL,
                queue_name TEXT NOT NULL,
                """ + ",\n                ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in COLUMNS) + """,
                PRIMARY KEY (minute, queue_name)
            ) WITHOUT ROWID""",
        ],
    ),
    (
        "destinations",
        [
            # scheme://host:port of callback_url (mininq/destination.py), so that
            # a claim can leave out a destination's jobs by an indexed column.
            "ALTER TABLE jobs ADD COLUMN destination TEXT NOT NULL DEFAULT ''",
            """UPDATE jobs SET destination = mininq_destination(callback_url)
               WHERE status IN ('pending', 'running')""",
            # The claim order per queue as before; destination rides in the
            # index so that rows of a left-out destination are skipped there.
            "DROP INDEX jobs_claim",
            """CREATE INDEX jobs_claim ON jobs (queue_name, priority DESC, visible_at, id,
                   destination) WHERE status = 'pending'""",
            "DROP INDEX jobs_due",
            """CREATE INDEX jobs_due ON jobs (queue_name, visible_at, destination)
               WHERE status = 'pending'""",
            # One destination's jobs in claim order per queue (a claim of a
            # destination with little room), and its pending count.
            """CREATE INDEX jobs_destination ON jobs (destination, queue_name, priority DESC,
                   visible_at, id) WHERE status = 'pending'""",
            # Each node's (here: the engine's) view of its destinations, written
            # by the engine with its outcome batches, read by GET /destinations.
            # `resets` counts POST /destinations/reset; the engine applies new ones.
            """CREATE TABLE destinations (
                node TEXT NOT NULL,
                destination TEXT NOT NULL,
                state TEXT NOT NULL,
                "limit" INTEGER NOT NULL,
                in_flight INTEGER NOT NULL,
                consecutive_failures INTEGER NOT NULL,
                last_status INTEGER,
                last_error TEXT,
                open_until INTEGER,
                delivered INTEGER NOT NULL,
                failed INTEGER NOT NULL,
                seen_at INTEGER NOT NULL,
                resets INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (node, destination)
            ) WITHOUT ROWID""",
            "CREATE INDEX destinations_seen ON destinations (seen_at)",
        ],
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)
MIN_SQLITE = (3, 35)  # RETURNING, which claims and recovery rely on


class SchemaTooNew(DatabaseRefused):
    """The database was written by a newer mininq."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version now in the file.

    Runs in the main process before any child starts, so no other
    connection races it. WAL mode persists in the file, so it is set here once.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise DatabaseRefused(
            f"SQLite {sqlite3.sqlite_version} is too old: mininq needs "
            f"{'.'.join(map(str, MIN_SQLITE))} or newer (UPDATE ... RETURNING)"
        )
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the database was written by a newer mininq (schema version {version}; "
            f"this mininq knows up to {SCHEMA_VERSION}): upgrade mininq or use another db_path"
        )
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.create_function("mininq_destination", 1, destination_of, deterministic=True)
    for number, (_name, statements) in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION
