"""SQLite errors that mean "the database can't do this now", in words.

A full disk, a read-only file or file system, a lock held past the busy
timeout or failing I/O are conditions of the machine, not bugs: they become
`Unavailable` (HTTP 507 for a full disk, 503 for the others) so the API can
answer with the cause and the log can say it once, instead of a 500 and a
traceback per request. Any other SQLite error stays what it is.
"""

from __future__ import annotations

import sqlite3

from mininq.store.errors import Unavailable

# Primary result codes (https://sqlite.org/rescode.html) -> (cause, HTTP status).
_CAUSES: dict[int, tuple[str, int]] = {
    3: ("permission denied", 503),  # SQLITE_PERM
    5: ("locked by another process", 503),  # SQLITE_BUSY, past busy_timeout
    6: ("locked", 503),  # SQLITE_LOCKED
    7: ("out of memory", 503),  # SQLITE_NOMEM
    8: ("read-only", 503),  # SQLITE_READONLY
    10: ("I/O error", 503),  # SQLITE_IOERR
    11: ("file is damaged", 503),  # SQLITE_CORRUPT
    13: ("disk full", 507),  # SQLITE_FULL (also max_page_count reached)
    14: ("can't open the file", 503),  # SQLITE_CANTOPEN
    26: ("file is damaged", 503),  # SQLITE_NOTADB
}


def unavailable(exc: BaseException) -> Unavailable | None:
    """The Unavailable this SQLite error stands for, or None if it is not one."""
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    found = _CAUSES.get(code & 0xFF)
    if found is None:
        return None
    cause, status = found
    return Unavailable(cause, str(exc), status)
