"""A callback URL's destination: `scheme://host:port`, the unit the engine
limits, breaks and pauses deliveries by (SPEC §10).

Pure: computed once when a job is created and stored with it, so a claim can
leave out a destination's jobs by an indexed column.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


@lru_cache(maxsize=1024)  # a str in, a str out; run for every job created
def destination_of(url: str) -> str:
    """`scheme://host:port` with the default port written out, the host
    lower-cased and an IPv6 host in brackets. An unparsable URL (the API
    refuses those) maps to itself, so it still has a destination of its own."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is None:
        port = DEFAULT_PORTS.get(scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
