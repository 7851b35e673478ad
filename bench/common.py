"""Small helpers shared by the benchmark's processes: loop policy, percentiles,
and running a helper process that answers with one JSON document."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

# The payload every system delivers: small, like a typical webhook event.
PAYLOAD = {"event": "user.signup", "user_id": 4242, "email": "ada@example.com"}


def job_body(callback_url: str, queue: str, **fields: object) -> str:
    """A mininq job create object as JSON text."""
    return json.dumps(
        {"callback_url": callback_url, "queue_name": queue, "payload": PAYLOAD, **fields},
        separators=(",", ":"),
    )


def install_uvloop() -> bool:
    """Use uvloop when installed, as Sanic does by default; say whether it is."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[min(len(ordered), int(rank)) - 1]


REPO_ROOT = str(Path(__file__).resolve().parent.parent)


def child_env(**extra: str) -> dict[str, str]:
    """Environment for helper processes: `python -m bench.x` works from any cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def run_json(module: str, spec: dict, timeout: float = 1800.0) -> dict:
    """Run `python -m module` with spec as JSON on stdin; return its JSON stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", module],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=child_env(),
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{module} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(
            f"{module} printed {len(proc.stdout)} characters that are not one JSON "
            f"document ({exc}); its stderr: {proc.stderr.strip()[-2000:]}"
        ) from None


def read_spec() -> dict:
    """The JSON spec a helper process gets on stdin."""
    return json.loads(sys.stdin.read())


def write_result(result: dict) -> None:
    """The result as JSON on stdout, every byte of it: a W2 result (about
    600 KB) once reached the parent cut short with exit status 0. Written
    with os.write on a blocking fd, no text buffer in between can drop a tail."""
    data = memoryview(json.dumps(result).encode())
    fd = sys.stdout.fileno()
    os.set_blocking(fd, True)
    while data:
        data = data[os.write(fd, data):]


def free_port() -> int:
    """A loopback port free right now (the usual small race is acceptable here)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on the loopback port."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on port {port} after {timeout} s")
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen, sig: int | None = None, timeout: float = 10.0) -> None:
    """Ask a child to stop, then kill it if it does not."""
    import signal

    if proc.poll() is None:
        proc.send_signal(sig if sig is not None else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def first_arrivals(arrivals: list[tuple[str | None, float]]) -> dict[str, float]:
    """Job id → time of its first arrival (retries and duplicates ignored)."""
    first: dict[str, float] = {}
    for job_id, t in arrivals:
        if job_id is not None and job_id not in first:
            first[job_id] = t
    return first


def latency_summary(pairs: list[tuple[float, float | None]]) -> dict:
    """p50/p99 in ms of (start, arrival) pairs; missing arrivals are counted.

    An arrival before its start (the receiver saw the job before the client
    read its 201) counts as 0 ms.
    """
    values = [max(0.0, (arrival - start) * 1000.0) for start, arrival in pairs
              if arrival is not None]
    missing = sum(1 for _, arrival in pairs if arrival is None)
    return {
        "problem": f"{missing} of {len(pairs)} jobs never arrived" if missing else None,
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else None,
        "count": len(values),
        "missing": missing,
    }
