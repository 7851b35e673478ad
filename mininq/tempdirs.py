"""Unpacking folders that stopped instances leave behind, removed at start-up.

The one-file executable unpacks itself into `_MEIxxxxxx` in the temp
directory (~24 MB) and removes it on a clean exit only, so they pile up when
mininq is killed (`kill -9`, OOM, power loss) and restarted, as a restart
policy does in a crash loop. (multiprocessing's `pymp-*` folders don't: the
state manager's socket is abstract, see `sanic_fixes`.)

At start-up mininq takes its own (`claim`): it holds a shared `flock` on its
unpacking folder for as long as it runs. `remove_leftovers` deletes the
`_MEI*` folders whose instance is gone. A folder is left alone when any of
these holds:

- it is not ours to judge: another user's, or a symlink;
- someone holds its `flock` (a running mininq, whichever its pid namespace);
- a process on this machine maps a file under it, has its working directory
  or an open file there, or a Unix socket bound there (a running one-file
  program of another version, or one that takes no lock);
- an unpacking folder changed in the last GRACE_S seconds: it may be being
  unpacked right now, before any process maps it.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import sys
import time
from dataclasses import dataclass

_UNPACKED = re.compile(r"_MEI[0-9A-Za-z]{6,32}")  # PyInstaller 6.22: _MEI000039c1RFkSiv
GRACE_S = 10.0

_held: list[int] = []  # fds this process holds its locks on, open until it exits


@dataclass(frozen=True)
class Removed:
    path: str
    size: int


def unpacked_dir() -> str | None:
    """The one-file executable's unpacking folder, or None when not frozen."""
    return getattr(sys, "_MEIPASS", None) if getattr(sys, "frozen", False) else None


def claim() -> str | None:
    """Lock this instance's unpacking folder for its lifetime; returns it
    (None when not frozen)."""
    unpacked = unpacked_dir()
    if unpacked:
        fd = os.open(unpacked, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held.append(fd)
    return unpacked


def leftover_candidates(base: str) -> list[str]:
    """Unpacking folders in `base`, owned by this user."""
    out = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return []
    for entry in entries:
        if not _UNPACKED.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            out.append(entry.path)
    return out


def remove_leftovers(bases: list[str], now: float | None = None) -> list[Removed]:
    """Delete the folders stopped instances left in `bases`; returns what went."""
    candidates = [p for base in dict.fromkeys(bases) for p in leftover_candidates(base)]
    if not candidates:
        return []
    now = time.time() if now is None else now
    used = _paths_in_use()
    removed = []
    for path in candidates:
        if now - _last_change(path) < GRACE_S:
            continue
        if any(p == path or p.startswith(path + os.sep) for p in used):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live instance holds it
            size = _size(path)
            shutil.rmtree(path, ignore_errors=True)
            if not os.path.exists(path):
                removed.append(Removed(path, size))
        finally:
            os.close(fd)
    return removed


def _last_change(path: str) -> float:
    """The newest mtime of the folder and its direct entries (unpacking writes there)."""
    newest = 0.0
    try:
        newest = os.stat(path).st_mtime
        for entry in os.scandir(path):
            newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        pass
    return newest


def _size(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _paths_in_use() -> set[str]:
    """Every file path a live process of this machine maps, has open, works in,
    or has bound a Unix socket to (as far as /proc lets this user see)."""
    used: set[str] = set()
    for pid in (e.name for e in os.scandir("/proc") if e.name.isdigit()):
        proc = f"/proc/{pid}"
        try:
            with open(f"{proc}/maps", "rb") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].startswith(b"/"):
                        used.add(os.fsdecode(parts[5].rstrip(b"\n").removesuffix(b" (deleted)")))
        except OSError:
            pass
        for link in ("cwd", "root"):
            try:
                used.add(os.readlink(f"{proc}/{link}"))
            except OSError:
                pass
        try:
            fds = os.listdir(f"{proc}/fd")
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(f"{proc}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("/"):
                used.add(target.removesuffix(" (deleted)"))
    try:
        with open("/proc/net/unix", "rb") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7].startswith(b"/"):
                    used.add(os.fsdecode(parts[7]))
    except OSError:
        pass
    used.discard("/")
    return used
