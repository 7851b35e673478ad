"""UUIDv7 ids: time-ordered, so id order is creation order (RFC 9562)."""

from __future__ import annotations

import os
import re
import threading

from mininq.clock import now_ms

_lock = threading.Lock()
_last_ms = 0
_seq = 0


def uuid7() -> str:
    """A new UUIDv7 string; strictly increasing within this process.

    The 12-bit `rand_a` field holds a counter seeded randomly each millisecond
    (RFC 9562 method 1) so ids made in the same millisecond still sort in
    creation order.
    """
    global _last_ms, _seq
    with _lock:
        ms = now_ms()
        if ms > _last_ms:
            _last_ms = ms
            _seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _seq += 1
            if _seq > 0xFFF:
                _last_ms += 1
                _seq = 0
            ms = _last_ms
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFFFFFFFFFFFFFF
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | _seq << 64 | 0b10 << 62 | rand_b
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(text: str) -> bool:
    """True for a canonical lower- or upper-case UUID string."""
    return isinstance(text, str) and _UUID.match(text) is not None
