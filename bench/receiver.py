"""The webhook receiver every workload delivers to: a minimal HTTP/1.1 server.

It runs in its own process (``python -m bench.receiver``) so its CPU is not
counted against the system under test. It answers every request with 200 and
a tiny JSON body, and records ``(X-Mininq-Job-Id, time.time())`` for each
arrival, which is what the latency workloads need and what nginx with
``access_log off`` cannot tell us. Paths under ``/_bench/`` are its control
interface: ``stats``, ``arrivals`` and ``reset``; they are not recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from bench.common import child_env, install_uvloop

OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 11\r\n\r\n{\"ok\":true}"
)
CONTROL_PREFIX = b"/_bench/"


class Recorder:
    """Arrivals since the last reset."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str | None, float]] = []

    def reset(self) -> None:
        self.arrivals = []

    def stats(self) -> dict:
        last = self.arrivals[-1][1] if self.arrivals else None
        first = self.arrivals[0][1] if self.arrivals else None
        return {"count": len(self.arrivals), "first": first, "last": last}


class RequestProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with Content-Length or chunked bodies, nothing
    more: `request` is called with each whole request's lower-cased headers."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (request := take_request(self.buf)) is not None:
            head, total = request
            self.buf = self.buf[total:]
            self.request(head)

    def request(self, head: bytes) -> None:
        raise NotImplementedError


class ReceiverProtocol(RequestProtocol):
    """Records each arrival and answers 200 at once; control paths answer figures."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def request(self, head: bytes) -> None:
        assert self.transport is not None
        line_end = head.find(b"\r\n")
        request_line = head if line_end < 0 else head[:line_end]
        parts = request_line.split(b" ")
        path = parts[1] if len(parts) > 1 else b"/"
        if path.startswith(CONTROL_PREFIX):
            body = self._control(path[len(CONTROL_PREFIX):])
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
        else:
            job_id = _header(head, b"x-mininq-job-id")
            self.recorder.arrivals.append(
                (job_id.decode() if job_id is not None else None, time.time())
            )
            self.transport.write(OK_RESPONSE)
        if _header(head, b"connection") == b"close":
            self.transport.close()

    def _control(self, command: bytes) -> bytes:
        if command.startswith(b"reset"):
            self.recorder.reset()
            return b"{}"
        if command.startswith(b"arrivals"):
            return json.dumps(self.recorder.arrivals).encode()
        return json.dumps(self.recorder.stats()).encode()


def take_request(buf: bytes) -> tuple[bytes, int] | None:
    """The first whole request in `buf`: its lower-cased header block and its
    length in bytes, body included; None while it is still arriving."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    body_start = end + 4
    length = _header(head, b"content-length")
    if length is not None:
        total = body_start + int(length)
        return (head, total) if len(buf) >= total else None
    if _header(head, b"transfer-encoding") == b"chunked":
        total = _chunked_end(buf, body_start)
        return (head, total) if total >= 0 else None
    return head, body_start


def _header(head: bytes, name: bytes) -> bytes | None:
    """Value of a header in a lower-cased header block, or None."""
    key = b"\r\n" + name + b":"
    at = head.find(key)
    if at < 0:
        return None
    start = at + len(key)
    stop = head.find(b"\r\n", start)
    return (head[start:] if stop < 0 else head[start:stop]).strip()


def _chunked_end(buf: bytes, pos: int) -> int:
    """Index just past a complete chunked body starting at pos, or -1."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return -1
        size = int(buf[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2 + size + 2
        if len(buf) < pos:
            return -1
        if size == 0:
            return pos


async def serve(host: str, port: int) -> None:
    """Serve until killed; print the bound port on stdout first."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    server = await loop.create_server(
        lambda: ReceiverProtocol(recorder), host, port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class Receiver:
    """Handle on a receiver process started by :func:`start`."""

    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _get(self, command: str):
        url = f"http://127.0.0.1:{self.port}/_bench/{command}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._get("reset")

    def stats(self) -> dict:
        return self._get("stats")

    def arrivals(self) -> list[tuple[str | None, float]]:
        return [(job_id, t) for job_id, t in self._get("arrivals")]

    def wait_for(self, count: int, timeout: float, idle_timeout: float = 30.0) -> dict:
        """Poll until `count` arrivals, or no progress for `idle_timeout` s."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            stats = self.stats()
            if stats["count"] >= count:
                return stats
            now = time.monotonic()
            if stats["count"] != last_count:
                last_count, last_change = stats["count"], now
            if now > deadline or now - last_change > idle_timeout:
                return stats
            time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(python: str = sys.executable) -> Receiver:
    """Start a receiver process on a free loopback port."""
    proc = subprocess.Popen(
        [python, "-m", "bench.receiver", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"receiver did not start: {line!r}")
    return Receiver(proc, int(line.split()[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description="bench webhook receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    install_uvloop()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
