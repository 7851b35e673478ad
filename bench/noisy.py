"""The noisy-neighbour workload: a healthy destination's delivery rate while a
hanging destination shares its queue, as a ratio to the healthy destination
alone, for mininq and for huey in the same run.

Two receivers run on an asyncio loop in a thread of the bench process, on
two ports (two destinations): *healthy* answers 200 after HEALTHY_DELAY_S,
*hanging* reads each request and never answers. The service time makes the
healthy rate depend on free delivery slots, which is what a hanging
neighbour takes. Jobs alternate hanging, healthy, hanging... in one queue,
enqueued before delivery starts (mininq: a paused queue then resumed; huey:
before its consumer starts). Both give up on an attempt after TIMEOUT_S and
keep their default retries. The rate is the healthy receiver's arrivals
from its first to its last within WINDOW_S.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

from bench import huey_peer
from bench.common import free_port
from bench.mininq_runs import MininqServer, start_server
from bench.receiver import RequestProtocol

HEALTHY_DELAY_S = 0.2
TIMEOUT_S = 2.0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _Healthy(RequestProtocol):
    def __init__(self, owner: Receivers) -> None:
        super().__init__()
        self.owner = owner

    def request(self, head: bytes) -> None:
        self.owner.arrivals.append(time.monotonic())
        asyncio.get_running_loop().call_later(HEALTHY_DELAY_S, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)


class _Hanging(asyncio.Protocol):
    def __init__(self, owner: Receivers) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.hanging_open += 1

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"POST"):
            self.owner.hanging_requests += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.hanging_open -= 1


class Receivers:
    """The healthy and the hanging receiver, on a loop in a thread."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.hanging_requests = 0
        self.hanging_open = 0
        self.healthy_port, self.hanging_port = free_port(), free_port()
        self.loop = asyncio.new_event_loop()
        self._servers: list[asyncio.AbstractServer] = []
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            self._servers = [
                await self.loop.create_server(lambda: _Healthy(self), "127.0.0.1",
                                              self.healthy_port, backlog=1024),
                await self.loop.create_server(lambda: _Hanging(self), "127.0.0.1",
                                              self.hanging_port, backlog=1024),
            ]
            ready.set()

        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    @property
    def healthy_url(self) -> str:
        return f"http://127.0.0.1:{self.healthy_port}/hook"

    @property
    def hanging_url(self) -> str:
        return f"http://127.0.0.1:{self.hanging_port}/hook"

    def reset(self) -> None:
        self.loop.call_soon_threadsafe(self.arrivals.clear)
        time.sleep(0.05)
        self.hanging_requests = 0

    def rate(self, count: int, window_s: float, idle_s: float = 20.0) -> dict:
        """Wait for `count` healthy arrivals (or the window to pass); their rate."""
        start = time.monotonic()
        while True:
            got = list(self.arrivals)
            first = got[0] if got else None
            done = len(got) >= count
            if first is not None and time.monotonic() - first >= window_s:
                done = True
            if not got and time.monotonic() - start > idle_s:
                raise RuntimeError("the healthy receiver got nothing")
            if done:
                break
            time.sleep(0.05)
        inside = [t for t in got if t - got[0] <= window_s]
        seconds = inside[-1] - inside[0]
        return {"delivered": len(inside), "seconds": seconds,
                "rate": (len(inside) - 1) / seconds if seconds > 0 else None,
                "hanging_requests": self.hanging_requests}

    def stop(self) -> None:
        for server in self._servers:
            self.loop.call_soon_threadsafe(server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _jobs(rcv: Receivers, count: int, neighbour: bool) -> list[str]:
    if not neighbour:
        return [rcv.healthy_url] * count
    return [url for _ in range(count) for url in (rcv.hanging_url, rcv.healthy_url)]


def _mininq_phase(server: MininqServer, rcv: Receivers, name: str, count: int,
                  window_s: float, neighbour: bool) -> dict:
    server.create_queue(name, paused=True)
    urls = _jobs(rcv, count, neighbour)
    for start in range(0, len(urls), 1000):
        status, doc = server.call("POST", "/jobs/batch", {"jobs": [
            {"callback_url": u, "queue_name": name, "timeout_ms": int(TIMEOUT_S * 1000)}
            for u in urls[start:start + 1000]]})
        if status != 201:
            raise RuntimeError(f"POST /jobs/batch: HTTP {status} {doc}")
    rcv.reset()
    status, doc = server.call("POST", f"/queues/{name}/resume")
    if status != 200:
        raise RuntimeError(f"resume {name}: HTTP {status} {doc}")
    out = rcv.rate(count, window_s)
    server.call("POST", f"/queues/{name}/pause")
    return out


def run_mininq(tmp: str, count: int, window_s: float) -> dict:
    rcv = Receivers()
    server = start_server(os.path.join(tmp, "noisy"))
    try:
        alone = _mininq_phase(server, rcv, "noisy-alone", count, window_s, False)
        beside = _mininq_phase(server, rcv, "noisy-beside", count, window_s, True)
        status, destinations = server.call("GET", "/destinations")
    finally:
        server.stop()
        rcv.stop()
    return _result(alone, beside) | {"destinations": destinations if status == 200 else None}


def _huey_phase(tmp: str, rcv: Receivers, name: str, count: int, window_s: float,
                neighbour: bool) -> dict:
    db_path = os.path.join(tmp, f"huey-{name}.db")
    huey_peer.produce(db_path, "", urls=_jobs(rcv, count, neighbour))
    rcv.reset()
    consumer = huey_peer.start_consumer(db_path, timeout_s=TIMEOUT_S, quiet=True)
    try:
        return rcv.rate(count, window_s)
    finally:
        consumer.stop()


def run_huey(tmp: str, count: int, window_s: float) -> dict:
    rcv = Receivers()
    try:
        alone = _huey_phase(tmp, rcv, "noisy-alone", count, window_s, False)
        beside = _huey_phase(tmp, rcv, "noisy-beside", count, window_s, True)
    finally:
        rcv.stop()
    return _result(alone, beside)


def _result(alone: dict, beside: dict) -> dict:
    ratio = beside["rate"] / alone["rate"] if alone["rate"] and beside["rate"] else None
    return {"alone": alone, "beside": beside, "ratio_percent": None if ratio is None
            else 100 * ratio}
