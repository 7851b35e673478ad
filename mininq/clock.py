"""The one clock of mininq: every "now" in the code comes from here.

Times are integer epoch milliseconds everywhere inside mininq (storage, engine,
scheduling); they become RFC 3339 strings only at the API boundary.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_last_second = -1
_last_prefix = ""


def now_ms() -> int:
    """Current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def to_rfc3339(ms: int | None) -> str | None:
    """Epoch milliseconds to `2026-11-27T10:00:01.234Z`."""
    global _last_second, _last_prefix
    if ms is None:
        return None
    second, milli = divmod(ms, 1000)
    if second != _last_second:  # a response's times mostly share their second
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = second
    return f"{_last_prefix}.{milli:03d}Z"


def parse_rfc3339(text: str) -> int:
    """RFC 3339 string (any offset, `Z` allowed) to epoch ms; ValueError if not one."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError("not an RFC 3339 timestamp")
    dt = datetime.fromisoformat(text.replace("z", "Z"))
    if dt.tzinfo is None:
        raise ValueError("RFC 3339 timestamp needs a zone offset or Z")
    return (dt - _EPOCH) // timedelta(milliseconds=1)
