"""A real webhook receiver: an HTTP/1.1 server in a background thread.

mininq delivers jobs to it over real TCP. Each test takes its own path
(`new_path()`), programs the replies for it (`respond`) and inspects what
arrived (`hits`, `wait_for`, `max_concurrency`), so one receiver can serve a
whole test session.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request.

    `body` may be bytes, str, or a JSON-able dict/list. `delay_s` waits before
    answering (the request counts as in flight meanwhile). `close` answers with
    `Connection: close` and closes the connection. `drop` closes the connection
    without answering at all (the client sees a reset/disconnect).
    """

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    close: bool = False
    drop: bool = False

    def encoded_body(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


DEFAULT_REPLY = Reply(200, b'{"ok":true}', {"Content-Type": "application/json"})


@dataclass
class Hit:
    """One request as the receiver saw it.

    `received_at` is wall-clock (time.time()) at arrival; `started` (arrival)
    and `finished` (the moment the answer is sent) are time.monotonic(). A hit
    is recorded as soon as its body is read, so `finished` is None while the
    reply is still pending (e.g. during a programmed delay).
    """

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    json: Any
    received_at: float
    started: float
    finished: float | None = None
    query: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class _PathState:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.served = 0  # how many programmed replies were used
        self.hits: list[Hit] = []
        self.in_flight = 0
        self.peak = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (kill -9 tests) resets the connection:
        # expected, not a receiver failure worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; the hits are the record

    def _handle(self) -> None:
        receiver = self.server.receiver
        received_at = time.time()
        started = time.monotonic()
        body = self._read_body()
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        hit = Hit(path, self.command, headers, body, parsed, received_at, started, query=query)
        reply, state = receiver._begin(hit)
        try:
            self._reply(reply, receiver, lambda: receiver._end(hit, state))
        finally:
            receiver._end(hit, state)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, reply: Reply, receiver: Receiver, finish: Callable[[], None]) -> None:
        """Answer as `reply` says; `finish()` runs just before the answer leaves.

        Marking the hit finished before the first byte is sent means a client
        that has its answer always sees `finished` set and in_flight lowered.
        """
        if reply.delay_s > 0 and receiver._closing.wait(reply.delay_s):
            self.close_connection = True
            return
        finish()
        if reply.drop:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        payload = reply.encoded_body()
        try:
            self.send_response(reply.status)
            names = {k.lower() for k in reply.headers}
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(payload)))
            if reply.close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. mininq's delivery timeout): that is a
            # normal case to test, not a receiver failure.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Receiver:
    """Programmable webhook endpoint on 127.0.0.1 and a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._paths: dict[str, _PathState] = {}
        self._closing = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"receiver:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of `path` on this receiver."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def new_path(self) -> str:
        """A path no other test uses: `/hook/<uuid>`."""
        return f"/hook/{uuid.uuid4().hex}"

    def respond(self, path: str, *responses: Reply) -> None:
        """Program the replies for `path`: used in order, the last one repeats."""
        if not responses:
            raise ValueError("respond() needs at least one Reply")
        with self._lock:
            state = self._state(path)
            state.replies = list(responses)
            state.served = 0

    def hits(self, path: str) -> list[Hit]:
        """Every request to `path` so far, in arrival order."""
        with self._lock:
            return list(self._state(path).hits)

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Hit]:
        """Block until `path` got at least `count` requests; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            state = self._state(path)
            while len(state.hits) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [
                        (h.method, h.headers.get("x-mininq-attempt"), h.text[:200])
                        for h in state.hits
                    ]
                    raise AssertionError(
                        f"receiver {path}: expected {count} request(s) within {timeout} s, "
                        f"got {len(state.hits)}: {got}"
                    )
                self._changed.wait(left)
            return list(state.hits)

    def max_concurrency(self, path: str) -> int:
        """The peak number of requests to `path` in flight at the same time."""
        with self._lock:
            return self._state(path).peak

    def in_flight(self, path: str) -> int:
        """How many requests to `path` are being handled right now."""
        with self._lock:
            return self._state(path).in_flight

    def clear(self, path: str) -> None:
        """Forget the hits, replies and peak of `path`."""
        with self._lock:
            self._paths.pop(path, None)

    def close(self) -> None:
        """Stop serving; pending delays end at once without answering."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- called from handler threads ----------------------------------------

    def _state(self, path: str) -> _PathState:
        state = self._paths.get(path)
        if state is None:
            state = self._paths[path] = _PathState()
        return state

    def _begin(self, hit: Hit) -> tuple[Reply, _PathState]:
        with self._changed:
            state = self._state(hit.path)
            state.hits.append(hit)
            state.in_flight += 1
            state.peak = max(state.peak, state.in_flight)
            if state.replies:
                reply = state.replies[min(state.served, len(state.replies) - 1)]
                state.served += 1
            else:
                reply = DEFAULT_REPLY
            self._changed.notify_all()
            return reply, state

    def _end(self, hit: Hit, state: _PathState) -> None:
        # `state` is the one the hit began in, even if clear() replaced it since.
        with self._lock:
            if hit.finished is None:
                hit.finished = time.monotonic()
                state.in_flight -= 1
