"""CPU per job of each mininq process and thread: where a figure's time goes.

    python -m bench.cpu [--jobs 20000] [--from-source]

Two diagnostics the full benchmark does not isolate, each against a fresh
server started the way `just bench` starts it:

- enqueue: single POSTs into a paused queue (32 connections), so that only
  the HTTP worker works; CPU per request of its event-loop thread and of its
  SQLite writer thread;
- drain: jobs put into a paused queue through /jobs/batch, then the queue is
  resumed and delivered to the bench receiver; jobs/s and CPU per delivery of
  the engine's threads.

CPU comes from /proc (utime + stime), so the figures include everything the
process does, not only sampled Python frames. They move with the machine's
load like the benchmark's; compare runs made in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench import mininq_runs
from bench import receiver as receiver_mod
from bench.common import job_body, run_json
from bench.mininq_runs import CLK_TCK, MininqServer, start_server


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of each thread of `pid`: its main thread (the event
    loop) and the others by thread id (in practice aiosqlite's threads)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        name = "event loop" if int(tid) == pid else f"thread {tid}"
        out[name] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def engine_pid(server: MininqServer, db_path: str, timeout: float = 20.0) -> int:
    """The process holding the flock on `<db>-engine.lock` (/proc/locks names
    it); the engine takes it a moment after /health first answers."""
    deadline = time.monotonic() + timeout
    while True:
        children = set(server.pids())
        try:
            inode = os.stat(f"{db_path}-engine.lock").st_ino
        except FileNotFoundError:
            inode = None
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if (inode is not None and "FLOCK" in fields and fields[-3].endswith(f":{inode}")
                    and int(fields[-4]) in children):
                return int(fields[-4])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no engine process held the engine lock within {timeout} s")
        time.sleep(0.05)


def per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    """µs per job of each thread that used CPU in between."""
    return {
        name: round((after[name] - before.get(name, 0.0)) / jobs * 1e6)
        for name in after
        if after[name] - before.get(name, 0.0) > 0
    }


def enqueue(jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mininq-cpu-") as workdir:
        server = start_server(workdir)
        try:
            server.create_queue("cpu", paused=True)
            engine = engine_pid(server, os.path.join(workdir, "mininq.db"))
            http = [p for p in server.pids() if p not in (server.proc.pid, engine)]
            spec = {"mode": "burst", "port": server.port, "path": "/jobs",
                    "bodies": [job_body("http://127.0.0.1:9/unused", "cpu")],
                    "count": jobs, "connections": 32}
            run_json("bench.loadclient", {**spec, "count": min(2000, jobs)})  # warm up
            before = {p: thread_cpu(p) for p in http}
            result = run_json("bench.loadclient", spec)
            after = {p: thread_cpu(p) for p in http}
            rate = jobs / (result["end"] - result["start"])
            print(f"enqueue: {jobs} single POSTs into a paused queue, {rate:,.0f} jobs/s")
            for p in http:
                used = per_job(before[p], after[p], jobs)
                if used:  # the HTTP worker; not Sanic's main process or the bootloader
                    print(f"  HTTP worker {p}, µs of CPU per request: {used}")
        finally:
            server.stop()


def drain(jobs: int) -> None:
    receiver = receiver_mod.start()
    with tempfile.TemporaryDirectory(prefix="mininq-cpu-") as workdir:
        server = start_server(workdir)
        try:
            server.create_queue("cpu", paused=True)
            one = json.loads(job_body(receiver.url, "cpu"))
            for start in range(0, jobs, 100):
                batch = {"jobs": [one] * min(100, jobs - start)}
                status, doc = server.call("POST", "/jobs/batch", batch)
                if status != 201:
                    raise RuntimeError(f"POST /jobs/batch: HTTP {status} {doc}")
            engine = engine_pid(server, os.path.join(workdir, "mininq.db"))
            time.sleep(0.5)
            receiver.reset()
            before = thread_cpu(engine)
            started = time.time()
            server.call("POST", "/queues/cpu/resume")
            stats = receiver.wait_for(jobs, timeout=600)
            after = thread_cpu(engine)
            rate = jobs / (stats["last"] - started)
            print(f"drain: {jobs} jobs delivered at {rate:,.0f} jobs/s")
            print(f"  engine {engine}, µs of CPU per delivery: {per_job(before, after, jobs)}")
        finally:
            server.stop()
            receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--from-source", action="store_true",
                        help="run `python -m mininq` even when dist/mininq exists")
    args = parser.parse_args()
    mininq_runs.FROM_SOURCE = args.from_source
    print(f"server: {' '.join(mininq_runs.server_command())}")
    enqueue(args.jobs)
    drain(args.jobs)


if __name__ == "__main__":
    main()
