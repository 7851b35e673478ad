"""mininq's workloads, each against a fresh server started the way users start it.

The server is ``dist/mininq`` when built, else ``python -m mininq``, in a temp
dir with its own database, default log level (info: one line per delivery)
and its logs in a file. Every workload creates its queue first with
``max_concurrency`` equal to the default ``worker.concurrency`` (64), so that
the per-queue default (10) is not what is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

from bench.common import (
    REPO_ROOT,
    child_env,
    first_arrivals,
    free_port,
    job_body,
    latency_summary,
    percentile,
    run_json,
    stop_process,
)
from bench.receiver import Receiver

QUEUE_CONCURRENCY = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


FROM_SOURCE = False  # set by --from-source: ignore dist/mininq


def server_command() -> list[str]:
    """How a user starts mininq here: the built executable, else the module."""
    exe = Path(REPO_ROOT, "dist", "mininq")
    if not FROM_SOURCE and exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "mininq"]


def stale_build_warning() -> str | None:
    """Say so when dist/mininq is older than the source it would be measured for."""
    exe = Path(REPO_ROOT, "dist", "mininq")
    if server_command()[0] != str(exe):
        return None
    newest = max((p.stat().st_mtime for p in Path(REPO_ROOT, "mininq").rglob("*.py")),
                 default=0.0)
    if newest > exe.stat().st_mtime:
        return ("dist/mininq is older than mininq/ sources: rebuild it (just build) "
                "or pass --from-source")
    return None


@dataclass
class MininqServer:
    """A running mininq with its process tree, port and log file."""

    proc: subprocess.Popen
    port: int
    workdir: str
    log_path: str
    command: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """One JSON request from the bench process (setup, not measured)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url(path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def create_queue(self, name: str, **settings: object) -> None:
        status, doc = self.call("POST", "/queues",
                                {"name": name, "max_concurrency": QUEUE_CONCURRENCY,
                                 **settings})
        if status != 201:
            raise RuntimeError(f"POST /queues {name}: HTTP {status} {doc}")

    def pids(self) -> list[int]:
        """The server process and all its descendants."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    ppid = int(_stat_fields(int(entry))[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, []))
        return out

    def cpu_seconds(self) -> float:
        """utime + stime of every mininq process, in seconds."""
        total = 0
        for pid in self.pids():
            try:
                fields = _stat_fields(pid)
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE_SIZE
            except OSError:
                continue
        return total

    def pss_bytes(self) -> int:
        """Proportional set size: shared pages split between the processes sharing them."""
        total = 0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                continue
        return total

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat fields after the command name (index 0 = state)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()


def start_server(workdir: str, startup_timeout: float = 60.0,
                 database_url: str = "") -> MininqServer:
    """A fresh server on the SQLite file in `workdir`, or a node of `database_url`."""
    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    log_path = os.path.join(workdir, "mininq.log")
    command = server_command() + [
        "serve", "--port", str(port), "--db-path", os.path.join(workdir, "mininq.db"),
    ]
    if database_url:
        command += ["--database-url", database_url]
    env = {k: v for k, v in child_env().items() if not k.startswith("MININQ_")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    server = MininqServer(proc, port, workdir, log_path, command)
    deadline = time.monotonic() + startup_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"mininq exited with {proc.returncode}; see {log_path}:\n"
                               + Path(log_path).read_text()[-2000:])
        try:
            if server.call("GET", "/health")[0] == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"mininq not healthy after {startup_timeout} s; see {log_path}")
        time.sleep(0.1)


def rfc3339_ms(epoch_ms: int) -> str:
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def _check_statuses(result: dict, expected: str = "201") -> None:
    bad = {k: v for k, v in result["statuses"].items() if k != expected}
    if bad or result.get("errors"):
        raise RuntimeError(f"unexpected responses {bad}: {result.get('errors')}")


# ---- workloads ------------------------------------------------------------------

def throughput(server: MininqServer, receiver: Receiver, queue: str, count: int,
               batch: int = 1, connections: int = 32) -> dict:
    """W1 (batch=1, POST /jobs) or W1b (POST /jobs/batch): enqueue and end-to-end."""
    server.create_queue(queue)
    receiver.reset()
    one = job_body(receiver.url, queue)
    if batch > 1:
        path, body, requests = "/jobs/batch", '{"jobs":[' + ",".join([one] * batch) + "]}", \
            count // batch
    else:
        path, body, requests = "/jobs", one, count
    result = run_json("bench.loadclient", {
        "mode": "burst", "port": server.port, "path": path, "bodies": [body],
        "count": requests, "connections": connections,
    })
    _check_statuses(result)
    jobs = requests * batch
    stats = receiver.wait_for(jobs, timeout=900)
    receiver.reset()
    delivered = stats["count"] >= jobs
    problem = None if delivered else f"only {stats['count']} of {jobs} jobs delivered"
    return {
        "problem": problem,
        "jobs": jobs,
        "enqueue_rate": jobs / (result["end"] - result["start"]),
        "e2e_rate": jobs / (stats["last"] - result["start"]) if delivered else None,
        "delivered": stats["count"],
        "enqueue_s": result["end"] - result["start"],
        "e2e_s": stats["last"] - result["start"] if stats["last"] else None,
    }


def enqueue_only(server: MininqServer, receiver: Receiver, queue: str, count: int,
                 batch: int = 1, connections: int = 32) -> dict:
    """Enqueue into a paused queue: the HTTP and SQLite path with no deliveries
    competing for the cores (a diagnostic beside W1/W1b, not a target)."""
    server.create_queue(queue)
    status, doc = server.call("POST", f"/queues/{queue}/pause")
    if status != 200:
        raise RuntimeError(f"pause {queue}: HTTP {status} {doc}")
    one = job_body(receiver.url, queue)
    if batch > 1:
        path, body = "/jobs/batch", '{"jobs":[' + ",".join([one] * batch) + "]}"
    else:
        path, body = "/jobs", one
    requests = max(1, count // batch)
    result = run_json("bench.loadclient", {
        "mode": "burst", "port": server.port, "path": path, "bodies": [body],
        "count": requests, "connections": connections,
    })
    _check_statuses(result)
    return {"jobs": requests * batch,
            "enqueue_rate": requests * batch / (result["end"] - result["start"])}


def latency(server: MininqServer, receiver: Receiver,
            phases: list[tuple[float, float]], queue: str = "w2") -> list[dict]:
    """W2: open-loop POSTs at each phase's rate; 201 → arrival, per phase."""
    server.create_queue(queue)
    receiver.reset()
    result = run_json("bench.loadclient", {
        "mode": "rate", "port": server.port, "path": "/jobs",
        "bodies": [job_body(receiver.url, queue)], "phases": phases, "connections": 32,
    })
    if result["error_count"]:
        raise RuntimeError(f"W2 errors: {result['errors']}")
    receiver.wait_for(len(result["records"]), timeout=120, idle_timeout=15)
    arrived = first_arrivals(receiver.arrivals())
    receiver.reset()
    return [
        latency_summary([(r["done"], arrived.get(r["id"])) for r in result["records"]
                         if r["phase"] == phase])
        for phase in range(len(phases))
    ]


def delayed(server: MininqServer, receiver: Receiver, count: int, spread_s: float,
            lead_s: float = 1.5, queue: str = "delayed") -> dict:
    """Jobs with `run_at` spread over spread_s: lateness of arrival past run_at."""
    server.create_queue(queue)
    receiver.reset()
    base_ms = int((time.time() + lead_s) * 1000)
    due = [base_ms + int(i * spread_s * 1000 / count) for i in range(count)]
    bodies = [job_body(receiver.url, queue, run_at=rfc3339_ms(ms)) for ms in due]
    result = run_json("bench.loadclient", {
        "mode": "burst", "port": server.port, "path": "/jobs", "bodies": bodies,
        "count": count, "connections": 32, "collect_ids": True,
    })
    _check_statuses(result)
    post_s = result["end"] - result["start"]
    receiver.wait_for(count, timeout=spread_s + lead_s + 60, idle_timeout=spread_s + 15)
    arrived = first_arrivals(receiver.arrivals())
    receiver.reset()
    pairs = [(due[i] / 1000.0, arrived.get(job_id)) for job_id, _, i in result["done"]]
    summary = latency_summary(pairs)
    summary["post_s"] = post_s
    summary["early"] = sum(1 for start, t in pairs if t is not None and t < start - 0.001)
    return summary


def fill_backlog(server: MininqServer, receiver: Receiver, jobs: int,
                 queue: str = "backlog", batch: int = 1000) -> dict:
    """`jobs` pending jobs in a paused queue, inserted through /jobs/batch."""
    server.create_queue(queue)
    status, doc = server.call("POST", f"/queues/{queue}/pause")
    if status != 200:
        raise RuntimeError(f"pause {queue}: HTTP {status} {doc}")
    one = job_body(receiver.url, queue)
    batch = min(batch, jobs)
    body = '{"jobs":[' + ",".join([one] * batch) + "]}"
    result = run_json("bench.loadclient", {
        "mode": "burst", "port": server.port, "path": "/jobs/batch", "bodies": [body],
        "count": max(1, jobs // batch), "connections": 4,
    }, timeout=7200)
    _check_statuses(result)
    seconds = result["end"] - result["start"]
    inserted = max(1, jobs // batch) * batch
    return {"jobs": inserted, "seconds": seconds, "rate": inserted / seconds}


def list_latency(server: MininqServer, count: int) -> dict:
    result = run_json("bench.loadclient", {
        "mode": "get", "port": server.port, "path": "/jobs?status=pending&limit=50",
        "count": count,
    })
    _check_statuses(result, "200")
    values = result["latencies_ms"]
    return {"p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
            "count": len(values)}


def idle_resources(server: MininqServer, seconds: float) -> dict:
    """CPU share of one core used by all mininq processes while idle, and RSS."""
    before, t0 = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    used, elapsed = server.cpu_seconds() - before, time.monotonic() - t0
    return {"cpu_percent": 100.0 * used / elapsed, "rss_bytes": server.rss_bytes(),
            "pss_bytes": server.pss_bytes(), "processes": len(server.pids())}


class Profiler:
    """py-spy recording every mininq process while a workload runs (--profile)."""

    def __init__(self, server: MininqServer, out_dir: str, label: str) -> None:
        self.server, self.out_dir, self.label = server, out_dir, label
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Self:
        import shutil

        py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable),
                                                        "py-spy")
        if not os.path.exists(py_spy):
            print("py-spy not found: pip install py-spy", file=sys.stderr)
            return self
        os.makedirs(self.out_dir, exist_ok=True)
        for pid in self.server.pids():
            out = os.path.join(self.out_dir, f"{self.label}-{pid}.svg")
            self.procs.append(subprocess.Popen(
                [py_spy, "record", "-p", str(pid), "-o", out, "-r", "200", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches asynchronously
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for proc in self.procs:
            stop_process(proc, signal.SIGINT, timeout=30)
