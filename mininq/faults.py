"""Storage faults in the log: one line per cause per minute, not one per request.

When the disk fills, every write fails the same way, perhaps thousands of
times a second; a traceback each time would flood the log (which may share
the full disk). Each process keeps one FaultLog: the first failure of a cause
is logged at once, later ones of that cause within the minute are counted
into the next line. Only the SQLite store logs a cause clearing: once, when a
job create or the /health write check succeeds after a failed write, so only
in the HTTP process; the engine's faults, and PostgreSQL's, get no such line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mininq.clock import now_ms
from mininq.logs import get_logger, log_event
from mininq.store.errors import Unavailable

INTERVAL_MS = 60_000


class FaultLog:
    def __init__(self, logger: logging.Logger, interval_ms: int = INTERVAL_MS,
                 now: Callable[[], int] = now_ms) -> None:
        self.log = logger
        self.interval_ms = interval_ms
        self._now = now
        self._last: dict[str, int] = {}  # cause -> when it was last logged
        self._unlogged: dict[str, int] = {}  # cause -> failures since then

    def report(self, fault: Unavailable, where: str) -> None:
        """Count one failure; log it if its cause was not logged in the last minute."""
        now = self._now()
        last = self._last.get(fault.cause)
        if last is not None and now - last < self.interval_ms:
            self._unlogged[fault.cause] = self._unlogged.get(fault.cause, 0) + 1
            return
        since = self._unlogged.pop(fault.cause, 0)
        self._last[fault.cause] = now
        # Failed reads are reported here too (responses.py reports any
        # Unavailable); the message still says writes, as test_store_faults.py expects.
        log_event(self.log, logging.ERROR, f"database: {fault.cause}; writes fail until fixed",
                  detail=fault.detail, where=where, failures_since_last_line=since)

    def cleared(self, cause: str) -> None:
        """A write succeeded after failures of `cause`: say so once."""
        if self._last.pop(cause, None) is not None:
            since = self._unlogged.pop(cause, 0)
            log_event(self.log, logging.WARNING, f"database: writable again after {cause}",
                      failures_since_last_line=since)


FAULTS = FaultLog(get_logger("mininq.store"))
