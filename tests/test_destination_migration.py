"""Upgrading a database made before destinations: the column is filled in
for jobs still to deliver, on both backends."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from support.postgres import fresh_database

from mininq.store.sqlite import schema as sqlite_schema

PENDING = ("a", "pending", "HTTP://Example.com:8080/x")
DONE = ("b", "completed", "https://example.com/y")


def test_sqlite_upgrade_fills_destinations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite_schema.MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    for job_id, status, url in (PENDING, DONE):
        conn.execute(
            "INSERT INTO jobs (id, queue_name, status, callback_url, payload, max_retries, "
            "retry_backoff, base_delay_ms, max_delay_ms, timeout_ms, visible_at, created_at, "
            "updated_at) VALUES (?, 'q', ?, ?, '{}', 3, 'fixed', 1, 1, 1, 0, 0, 0)",
            (job_id, status, url))
    assert sqlite_schema.migrate(conn) == sqlite_schema.SCHEMA_VERSION
    rows = dict(conn.execute("SELECT id, destination FROM jobs"))
    assert rows == {"a": "http://example.com:8080", "b": ""}
    conn.close()


def test_postgres_upgrade_fills_destinations() -> None:
    import asyncpg

    from mininq.store.postgres import schema as pg_schema

    async def main(url: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE mininq_schema (version integer NOT NULL)")
            await conn.execute("INSERT INTO mininq_schema VALUES (1)")
            async with conn.transaction():
                for statement in pg_schema.MIGRATIONS[0][1]:
                    await conn.execute(statement)
            for job_id, status, url_ in (PENDING, DONE):
                await conn.execute(
                    "INSERT INTO jobs (id, queue_name, status, callback_url, payload, "
                    "max_retries, retry_backoff, base_delay_ms, max_delay_ms, timeout_ms, "
                    "visible_at, created_at, updated_at) "
                    "VALUES ($1, 'q', $2, $3, '{}', 3, 'fixed', 1, 1, 1, 0, 0, 0)",
                    job_id, status, url_)
            assert await pg_schema.migrate(conn) == pg_schema.SCHEMA_VERSION
            rows = {r["id"]: r["destination"]
                    for r in await conn.fetch("SELECT id, destination FROM jobs")}
            assert rows == {"a": "http://example.com:8080", "b": ""}
        finally:
            await conn.close()

    with fresh_database("mininq_migrate") as url:
        asyncio.run(main(url))
