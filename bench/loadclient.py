"""The load client: a lean HTTP/1.1 keep-alive client in its own process.

Run as ``python -m bench.loadclient`` with a JSON spec on stdin; it prints one
JSON result. A separate process keeps the client's CPU out of the server's
figures, and a raw asyncio protocol (on uvloop when installed) keeps the
client's own cost per request small, so that on a 2-core machine the client
takes as little as possible from the server it drives. Modes:

- ``burst``: `count` requests as fast as `connections` keep-alive
  connections allow (closed loop);
- ``rate``: open loop, `phases` of ``[rate_per_s, seconds]``, requests sent
  on schedule whatever the responses do, over a pool of connections;
- ``get``: `count` sequential requests on one connection, each timed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from bench.common import install_uvloop, read_spec, write_result


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            length = 0
        else:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        status = int(head[9:12])
        body = self.buf[end + 4 : total]
        self.buf = self.buf[total:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def connect(host: str, port: int) -> ClientConnection:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(ClientConnection, host, port)
    return conn


def build_request(method: str, host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def job_ids(body: bytes) -> list[str]:
    """Ids of the jobs in a /jobs or /jobs/batch response."""
    doc = orjson.loads(body)
    if isinstance(doc, dict) and "jobs" in doc:
        return [job["id"] for job in doc["jobs"]]
    return [doc["id"]]


class Requests:
    """The requests of a spec: bodies are cycled, request i uses bodies[i % n]."""

    def __init__(self, spec: dict) -> None:
        self.host = spec.get("host", "127.0.0.1")
        self.port = int(spec["port"])
        method = spec.get("method", "POST")
        path = spec["path"]
        bodies = spec.get("bodies") or [""]
        self.raw = [
            build_request(method, self.host, self.port, path, b.encode()) for b in bodies
        ]

    def __getitem__(self, i: int) -> bytes:
        return self.raw[i % len(self.raw)]


async def burst(spec: dict) -> dict:
    reqs = Requests(spec)
    count = int(spec["count"])
    collect = bool(spec.get("collect_ids"))
    conns = [await connect(reqs.host, reqs.port) for _ in range(int(spec["connections"]))]
    statuses: dict[int, int] = {}
    done: list[tuple[str, float, int]] = []
    errors: list[str] = []
    counter = iter(range(count))

    async def worker(conn: ClientConnection) -> None:
        for i in counter:
            try:
                status, body = await conn.request(reqs[i])
            except ConnectionError as exc:
                errors.append(str(exc))
                conn = await connect(reqs.host, reqs.port)
                continue
            now = time.time()
            statuses[status] = statuses.get(status, 0) + 1
            if collect and status < 300:
                done.extend((job_id, now, i) for job_id in job_ids(body))
            elif status >= 300 and len(errors) < 20:
                errors.append(f"HTTP {status}: {body[:200]!r}")

    start = time.time()
    await asyncio.gather(*(worker(c) for c in conns))
    end = time.time()
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "start": start,
        "end": end,
        "requests": count,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": errors[:20],
        "done": done,
    }


async def rate(spec: dict) -> dict:
    reqs = Requests(spec)
    pool: asyncio.Queue[ClientConnection] = asyncio.Queue()
    for _ in range(int(spec.get("connections", 32))):
        pool.put_nowait(await connect(reqs.host, reqs.port))
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    tasks: set[asyncio.Task] = set()

    async def one(i: int, phase: int, sent: float) -> None:
        conn = await pool.get()
        try:
            status, body = await conn.request(reqs[i])
        except ConnectionError as exc:
            errors.append(str(exc))
            pool.put_nowait(await connect(reqs.host, reqs.port))
            return
        now = time.time()
        pool.put_nowait(conn)
        if status >= 300:
            errors.append(f"HTTP {status}: {body[:200]!r}")
            return
        for job_id in job_ids(body):
            records.append({"phase": phase, "sent": sent, "done": now, "id": job_id})

    i = 0
    for phase, (per_s, seconds) in enumerate(spec["phases"]):
        begin = time.monotonic()
        n = int(per_s * seconds)
        for k in range(n):
            delay = begin + k / per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, phase, time.time()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
    while tasks:
        await asyncio.gather(*list(tasks))
    return {"records": records, "errors": errors[:20], "error_count": len(errors)}


async def get(spec: dict) -> dict:
    reqs = Requests({**spec, "method": "GET", "bodies": [""]})
    conn = await connect(reqs.host, reqs.port)
    latencies = []
    statuses: dict[int, int] = {}
    for _ in range(int(spec["count"])):
        t0 = time.perf_counter()
        status, _body = await conn.request(reqs[0])
        latencies.append((time.perf_counter() - t0) * 1000.0)
        statuses[status] = statuses.get(status, 0) + 1
    if conn.transport is not None:
        conn.transport.close()
    return {"latencies_ms": latencies, "statuses": {str(k): v for k, v in statuses.items()}}


MODES = {"burst": burst, "rate": rate, "get": get}


def main() -> None:
    spec = read_spec()
    install_uvloop()
    write_result(asyncio.run(MODES[spec["mode"]](spec)))


if __name__ == "__main__":
    main()
