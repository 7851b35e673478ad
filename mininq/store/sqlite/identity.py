"""Is the file at `db_path` a mininq database? Decided before anything writes to it.

mininq marks its files with `PRAGMA application_id` (MININQ_APPLICATION_ID,
"mnnq"). At start-up a file that exists and is not empty must be a SQLite
database carrying that mark, or an unmarked database made by an earlier
mininq (our tables, `user_version` > 0), which the migrations then mark.
Anything else (another application's database, random bytes, a copy cut
short) is refused with a message naming the file, and left exactly as it was:
the header is read with plain file I/O, and SQLite only ever opens an
unmarked file read-only, without creating files beside it.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path
from urllib.parse import quote

from mininq.store.errors import DatabaseRefused

MININQ_APPLICATION_ID = 0x6D6E6E71  # "mnnq"

HEADER_SIZE = 100
_MAGIC = b"SQLite format 3\x00"
# Tables the first schema created: an unmarked file holding all of them (and a
# user_version) was made by a mininq from before the mark.
LEGACY_TABLES = frozenset({"queues", "jobs", "attempts", "schedules", "counters", "job_counts"})


def check_database_file(path: str) -> None:
    """Raise DatabaseRefused unless mininq may create or open the file at `path`."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_SIZE)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return  # a new database
    except IsADirectoryError:
        raise DatabaseRefused(f"{path} is a directory, not a database file") from None
    except OSError as e:
        raise DatabaseRefused(f"{path}: cannot read the database file: {e.strerror}") from None
    if size == 0:
        return  # an empty file becomes a new database
    problem = header_problem(header, size)
    if problem:
        raise DatabaseRefused(f"{path} is not a mininq database: {problem}; "
                              "mininq left it untouched (choose another db_path)")
    if application_id(header) == MININQ_APPLICATION_ID:
        return
    tables, version = _schema(path)
    if not tables and version == 0:
        return  # a SQLite file with nothing in it yet
    if version > 0 and LEGACY_TABLES <= tables:
        return  # made by an earlier mininq: the migrations add the mark
    shown = ", ".join(sorted(tables)[:8]) or "none"
    raise DatabaseRefused(
        f"{path} is not a mininq database: it is another application's SQLite file "
        f"(no mininq mark; tables: {shown}; user_version {version}); "
        "mininq left it untouched (choose another db_path)"
    )


def application_id(header: bytes) -> int:
    return struct.unpack(">I", header[68:72])[0]


def header_problem(header: bytes, size: int) -> str | None:
    """What makes these first bytes and this size not a usable SQLite file, or None.

    Pure: reads the 100-byte header described in SQLite's file format document
    (magic string, page size at 16, change counter at 24, page count at 28,
    application_id at 68, version-valid-for at 92).
    """
    if len(header) < HEADER_SIZE or not header.startswith(_MAGIC):
        return "it is not a SQLite database file"
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"its header is damaged (page size {page_size})"
    app_id = application_id(header)
    if app_id not in (0, MININQ_APPLICATION_ID):
        return f"it belongs to another application (application_id {app_id:#010x})"
    change_counter, pages = struct.unpack(">II", header[24:32])
    (valid_for,) = struct.unpack(">I", header[92:96])
    # The page count is only trustworthy when written by SQLite 3.7.0+ in the
    # same transaction as the change counter.
    if valid_for == change_counter and pages * page_size > size:
        return (f"it is cut short ({size} bytes where its header says "
                f"{pages} pages of {page_size} bytes)")
    return None


def _schema(path: str) -> tuple[set[str], int]:
    """Table names and user_version, read without writing anything.

    Without a -wal file beside it, `immutable=1` reads the file with no locks
    and no side files; with one (a database in WAL mode, in use or left by a
    crash) the WAL may hold the schema, so it is read in plain read-only mode,
    which uses the side files that already exist.
    """
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    if not os.path.exists(f"{path}-wal"):
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            tables = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise DatabaseRefused(f"{path} is not a mininq database: SQLite can't read it ({e}); "
                              "mininq left it untouched (choose another db_path)") from None
    return tables, version
