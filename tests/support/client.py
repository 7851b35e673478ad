"""A small synchronous HTTP client for mininq's JSON API, built on http.client.

Tests talk to a real server over real keep-alive connections. Each thread gets
its own connection, so tests may fire concurrent requests from threads.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar
from urllib.parse import urlencode, urlsplit

T = TypeVar("T")

# Errors that mean "the server closed the idle keep-alive connection": the
# request is sent again once on a fresh connection.
_STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)


@dataclass
class Response:
    """One HTTP answer, fully read."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    method: str = ""
    path: str = ""
    json: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        try:
            self.json = jsonlib.loads(self.body) if self.body else None
        except ValueError:
            self.json = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def expect(self, *statuses: int) -> Any:
        """Assert the status is one of `statuses` and return the parsed JSON.

        The failure message carries the request and the body, so a failing
        test says what the server answered.
        """
        assert self.status in statuses, (
            f"{self.method} {self.path}: expected HTTP {'/'.join(map(str, statuses))}, "
            f"got {self.status}: {self.text[:2000]}"
        )
        return self.json

    def __repr__(self) -> str:
        return f"<Response {self.method} {self.path} {self.status} {self.text[:200]!r}>"


class ApiClient:
    """Keep-alive client for one base URL (`http://host:port`), one connection per thread."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"ApiClient needs an http://host:port URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.token = token
        self.timeout = timeout
        self.connections_opened = 0  # how many TCP connections were made, all threads
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[http.client.HTTPConnection] = []

    # -- verbs ---------------------------------------------------------------

    def get(self, path: str, **query: Any) -> Response:
        """GET with query parameters; None values are left out, booleans sent as true/false."""
        return self.request("GET", path, query=query)

    def post(
        self,
        path: str,
        json: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str | None] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Response:
        return self.request("POST", path, json=json, raw=raw, headers=headers, query=query)

    def put(
        self,
        path: str,
        json: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Response:
        return self.request("PUT", path, json=json, raw=raw, headers=headers)

    def delete(self, path: str, headers: dict[str, str | None] | None = None) -> Response:
        return self.request("DELETE", path, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        json: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str | None] | None = None,
    ) -> Response:
        """Send one request and read the whole answer.

        `json` is serialized (so JSON `null` must be sent as raw=b"null");
        `raw` is sent as is, with Content-Type application/json unless
        `headers` says otherwise. A header given as None is not sent.
        """
        if json is not None and raw is not None:
            raise ValueError("pass json or raw, not both")
        target = path if path.startswith("/") else "/" + path
        if query:
            encoded = urlencode([(k, _query_value(v)) for k, v in query.items() if v is not None])
            if encoded:
                target += ("&" if "?" in target else "?") + encoded
        body: bytes | None = None
        send_headers: dict[str, str | None] = {"Accept": "application/json"}
        if self.token:
            send_headers["Authorization"] = f"Bearer {self.token}"
        if json is not None:
            body = jsonlib.dumps(json).encode()
        elif raw is not None:
            body = raw
        if body is not None:
            send_headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            send_headers["Content-Length"] = "0"
        for name, value in (headers or {}).items():
            # Header names are case-insensitive: replace whatever spelling we set.
            for existing in [k for k in send_headers if k.lower() == name.lower()]:
                del send_headers[existing]
            send_headers[name] = value
        final = {k: v for k, v in send_headers.items() if v is not None}
        return self._send(method, target, body, final)

    # -- connections ---------------------------------------------------------

    def close(self) -> None:
        """Close every connection this client opened, in all threads."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local.__dict__.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before (may be stale)."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            return conn, True
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        conn.connect()
        with self._lock:
            self.connections_opened += 1
        return conn, False

    def _send(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        for attempt in (1, 2):
            conn, reused = self._connection()
            started = time.perf_counter()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE_CONNECTION_ERRORS:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                conn.close()  # a half-read answer would poison the next request
                raise
            elapsed_ms = (time.perf_counter() - started) * 1000
            if resp.will_close:
                conn.close()
            return Response(
                status=resp.status,
                headers=_header_dict(resp.getheaders()),
                body=data,
                elapsed_ms=elapsed_ms,
                method=method,
                path=target,
            )
        raise AssertionError("unreachable")

    # -- polling helpers -----------------------------------------------------

    def wait_job(
        self, job_id: str, statuses: str | Iterable[str], timeout: float = 15.0
    ) -> dict[str, Any]:
        """Poll GET /jobs/{id} until its status is one of `statuses`; return the job."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        last: list[Any] = [None]

        def check() -> dict[str, Any] | None:
            job = self.get(f"/jobs/{job_id}").expect(200)
            last[0] = job
            return job if job.get("status") in wanted else None

        return wait_until(
            check,
            timeout=timeout,
            message=lambda: f"job {job_id} never reached {sorted(wanted)}; last seen: {last[0]}",
        )


def wait_until(
    check: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call `check` until it returns something truthy and return that value.

    Raises AssertionError after `timeout` seconds with `message` (a string or
    a function building one from the last state) and the time waited.
    """
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        waited = time.monotonic() - started
        if waited >= timeout:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {waited:.2f} s)")
        time.sleep(interval)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _header_dict(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out
