"""Ceilings: what each part mininq is built from can do alone on this machine.

Each is measured in the same run as mininq, so ratios to them hold on any
machine. Work that must not share a process with the orchestrator (the aiohttp
client, SQLite) runs in ``python -m bench.ceilings`` with a JSON spec on stdin.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import receiver as receiver_mod
from bench.common import (
    PAYLOAD,
    child_env,
    free_port,
    install_uvloop,
    job_body,
    read_spec,
    run_json,
    stop_process,
    wait_port,
    write_result,
)

WRK_POST_LUA = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk_rate(url: str, seconds: float, connections: int = 32) -> float | None:
    """Requests/s that wrk (one thread) gets POSTing to url; None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_POST_LUA.format(body=json.dumps(PAYLOAD)))
    try:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s",
             script.name, url],
            capture_output=True, text=True, timeout=seconds + 60, check=False,
        ).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    return float(match.group(1)) if match else None


def loopback(receiver: receiver_mod.Receiver, seconds: float, count: int) -> dict:
    """Loopback HTTP to our receiver: wrk when installed, and our load client.

    The load client's figure also shows how far it is from limiting the
    workloads it drives.
    """
    receiver.reset()
    wrk = wrk_rate(receiver.url, seconds)
    receiver.reset()
    result = run_json("bench.loadclient", {
        "mode": "burst", "port": receiver.port, "path": "/hook",
        "bodies": [json.dumps(PAYLOAD)], "count": count, "connections": 32,
    })
    receiver.reset()
    client = count / (result["end"] - result["start"])
    if wrk is None:
        return {"rate": client, "tool": "bench.loadclient, 32 connections",
                "client_rate": client}
    return {"rate": wrk, "tool": "wrk -t1 -c32", "client_rate": client}


NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


def nginx_reference(seconds: float) -> float | None:
    """wrk against Debian's nginx (one worker): how fast a receiver can be.

    Only a reference beside our receiver's figure; None without nginx or wrk.
    """
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if nginx is None or shutil.which("wrk") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp, "nginx.conf")
        conf.write_text(NGINX_CONF.format(dir=tmp, port=port))
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", tmp], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, 10, proc)
            return wrk_rate(f"http://127.0.0.1:{port}/hook", seconds)
        except (RuntimeError, TimeoutError):
            return None
        finally:
            stop_process(proc, timeout=5)


def sanic_alone(count: int, connections: int = 32) -> dict:
    """Requests/s of a minimal one-worker Sanic app, driven like mininq's W1."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sanic_alone", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(),
    )
    try:
        wait_port(port, 30, proc)
        result = run_json("bench.loadclient", {
            "mode": "burst", "port": port, "path": "/jobs",
            "bodies": [job_body("http://127.0.0.1:9/hook", "w1")],
            "count": count, "connections": connections,
        })
    finally:
        stop_process(proc)
    ok = result["statuses"].get("201", 0)
    return {"rate": ok / (result["end"] - result["start"]), "statuses": result["statuses"]}


def webhook_client(url: str, count: int, inflight: int = 64) -> dict:
    """Requests/s of aiohttp alone POSTing deliveries, `inflight` at once."""
    return run_json("bench.ceilings", {
        "mode": "webhook", "url": url, "count": count, "inflight": inflight,
    })


def sqlite_alone(directory: str, seconds: float) -> dict:
    """Commits/s of one job row each, and rows/s in transactions of 100."""
    return run_json("bench.ceilings", {
        "mode": "sqlite", "dir": directory, "seconds": seconds,
    })


# ---- the helper process -----------------------------------------------------

async def _webhook_run(spec: dict) -> dict:
    import aiohttp

    body = json.dumps(PAYLOAD).encode()
    count, inflight = int(spec["count"]), int(spec["inflight"])
    counter = iter(range(count))
    statuses: dict[int, int] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=inflight)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            for i in counter:
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "mininq-bench",
                    "X-Mininq-Job-Id": f"ceiling-{i}",
                    "X-Mininq-Attempt": "1",
                    "X-Mininq-Queue": "bench",
                }
                async with session.post(spec["url"], data=body, headers=headers,
                                        allow_redirects=False) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - start
    return {"rate": count / elapsed, "statuses": {str(k): v for k, v in statuses.items()}}


JOB_TABLE = """CREATE TABLE jobs (
    id TEXT PRIMARY KEY, queue_name TEXT NOT NULL, status TEXT NOT NULL,
    priority INTEGER NOT NULL, callback_url TEXT NOT NULL, payload TEXT NOT NULL,
    headers TEXT, max_retries INTEGER NOT NULL, retry_backoff TEXT NOT NULL,
    base_delay_ms INTEGER NOT NULL, max_delay_ms INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL, idempotency_key TEXT, attempt INTEGER NOT NULL,
    visible_at INTEGER NOT NULL, lease_until INTEGER, started_at INTEGER, completed_at INTEGER,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, result TEXT,
    last_error TEXT, schedule_id TEXT
)"""
# A job row as mininq stores it, with the primary key and one claim index: the
# least a job store must maintain per insert (mininq itself keeps more indexes).
JOB_INDEX = (
    "CREATE INDEX jobs_claim ON jobs (queue_name, priority DESC, visible_at, id)"
    " WHERE status = 'pending'"
)
INSERT = "INSERT INTO jobs VALUES (" + ",".join("?" * 23) + ")"


def _job_row(n: int) -> tuple:
    now = int(time.time() * 1000)
    # Time-ordered text ids, like UUIDv7, so inserts append to the primary key.
    job_id = f"{now:012x}-7000-8000-{n:012x}"
    return (job_id, "bench", "pending", 0, "http://127.0.0.1:9/hook",
            json.dumps(PAYLOAD), None, 3, "exponential", 1000, 300000, 30000, None, 0,
            now, None, None, None, now, now, None, None, None)


def _sqlite_run(spec: dict) -> dict:
    path = os.path.join(spec["dir"], "ceiling.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(JOB_TABLE)
    conn.execute(JOB_INDEX)
    seconds = float(spec["seconds"])
    n = 0

    start = time.perf_counter()
    commits = 0
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT, _job_row(n))
        conn.execute("COMMIT")
        n += 1
        commits += 1
    single = commits / (time.perf_counter() - start)

    start = time.perf_counter()
    rows = 0
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, [_job_row(n + k) for k in range(100)])
        conn.execute("COMMIT")
        n += 100
        rows += 100
    batched = rows / (time.perf_counter() - start)
    conn.close()
    return {"commits_per_s": single, "rows_per_s_tx100": batched,
            "sqlite_version": sqlite3.sqlite_version}


def main() -> None:
    spec = read_spec()
    if spec["mode"] == "webhook":
        uvloop = install_uvloop()
        result = asyncio.run(_webhook_run(spec))
        result["uvloop"] = uvloop
    elif spec["mode"] == "sqlite":
        result = _sqlite_run(spec)
    else:
        raise SystemExit(f"unknown mode {spec['mode']}")
    write_result(result)


if __name__ == "__main__":
    main()
