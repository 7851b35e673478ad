"""Online backup of the live database (`mininq backup DEST`).

Uses SQLite's backup API in one step: the copy is one consistent snapshot
(a WAL read transaction), and mininq keeps writing while it runs because WAL
readers don't block writers. A step-wise backup would restart every time
another process writes and might never finish under load.

The copy is written next to DEST under a temporary name, checked with
`PRAGMA integrity_check`, and only then given its final name, so DEST either
does not exist or is a complete, verified database.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

BUSY_TIMEOUT_SECS = 30.0


class BackupError(Exception):
    """The backup could not be made; the message says why in plain words."""


def backup_database(db_path: str, dest: str) -> None:
    """Copy the database at db_path to dest (which must not exist yet) and verify the copy."""
    source = Path(db_path)
    target = Path(dest)
    if not source.is_file():
        raise BackupError(f"database {db_path} does not exist")
    if target.exists() or target.is_symlink():
        raise BackupError(f"{dest} already exists; choose a new file name")
    if not target.parent.is_dir():
        raise BackupError(f"directory {target.parent} does not exist")

    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        _copy(source, partial)
        _verify(partial)
        os.chmod(partial, stat.S_IMODE(source.stat().st_mode))
        _publish(partial, target)
    except sqlite3.Error as e:
        raise BackupError(f"{e} (copying {db_path} to {dest})") from None
    except OSError as e:
        raise BackupError(f"{e.filename or dest}: {e.strerror}") from None
    finally:
        for leftover in (partial, Path(f"{partial}-journal")):
            leftover.unlink(missing_ok=True)


def _copy(source: Path, partial: Path) -> None:
    # mode=rw: never create an empty database where the live one should be.
    uri = source.resolve().as_uri() + "?mode=rw"
    src = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECS, isolation_level=None)
    try:
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            src.backup(dst)  # pages=-1: all pages in one step, one snapshot
            # The copy is a single self-contained file; mininq turns WAL back on when it opens it.
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            dst.close()
    finally:
        src.close()


def _verify(partial: Path) -> None:
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
    finally:
        conn.close()
    if problems != ["ok"]:
        raise BackupError("the copy failed its integrity check: " + "; ".join(problems))


def _publish(partial: Path, target: Path) -> None:
    """Give the verified copy its final name without ever replacing an existing file."""
    try:
        os.link(partial, target)  # fails if target appeared meanwhile
    except FileExistsError:
        raise BackupError(f"{target} appeared while the backup was running") from None
    except OSError:
        # File systems without hard links: a plain rename, after the check above.
        if target.exists():
            raise BackupError(f"{target} appeared while the backup was running") from None
        os.rename(partial, target)
