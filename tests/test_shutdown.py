"""Graceful stop (SPEC §8): on SIGTERM mininq stops claiming, lets deliveries in
flight finish for up to `shutdown_timeout_secs`, interrupts the rest back to
pending, exits 0, and leaves nothing `running` in the file.

One scenario, run once for the module: two deliveries in flight when SIGTERM
arrives, one answered within the shutdown timeout and one that isn't.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import Hit, MininqServer, Receiver, Reply

SHUTDOWN_TIMEOUT_S = 2
QUICK_S = 1.0  # the in-flight delivery answered within the shutdown timeout
SLOW_S = 30.0  # the one that isn't
INTERRUPTED = "delivery interrupted: mininq was shutting down"


@dataclass
class Stopped:
    server: MininqServer
    quick: dict[str, Any]
    slow: dict[str, Any]
    quick_path: str
    slow_path: str
    exit_code: int
    stop_seconds: float
    signalled_at: float
    jobs: dict[str, dict[str, Any]]  # id -> row read from the file after the stop
    attempts: dict[str, list[dict[str, Any]]]


def read_db(db_path: Path) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """Every job and attempt row, read straight from the stopped server's file."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        jobs = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM jobs")}
        attempts: dict[str, list[dict]] = {}
        for r in conn.execute("SELECT * FROM attempts ORDER BY job_id, attempt"):
            attempts.setdefault(r["job_id"], []).append(dict(r))
        return jobs, attempts
    finally:
        conn.close()


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Stopped]:
    config = f"[worker]\nshutdown_timeout_secs = {SHUTDOWN_TIMEOUT_S}\n"
    srv = MininqServer(tmp_path_factory.mktemp("shutdown"), config_toml=config)
    with srv:
        quick_path, slow_path = receiver.new_path(), receiver.new_path()
        receiver.respond(quick_path, Reply(200, b"answered during shutdown", delay_s=QUICK_S))
        receiver.respond(slow_path, Reply(200, b"too slow", delay_s=SLOW_S), Reply(200, b"again"))
        with srv.client() as api:
            quick = api.post("/jobs", json={"callback_url": receiver.url(quick_path)}).expect(201)
            slow = api.post("/jobs", json={"callback_url": receiver.url(slow_path)}).expect(201)
        receiver.wait_for(quick_path, 1)
        receiver.wait_for(slow_path, 1)
        signalled_at = time.monotonic()
        code = srv.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT_S + 15)
        stop_seconds = time.monotonic() - signalled_at
        jobs, attempts = read_db(srv.db_path)
        yield Stopped(
            srv,
            quick,
            slow,
            quick_path,
            slow_path,
            code,
            stop_seconds,
            signalled_at,
            jobs,
            attempts,
        )


def test_exit_code_is_0_within_the_shutdown_timeout(stopped: Stopped) -> None:
    print(f"SIGTERM -> exit {stopped.exit_code} after {stopped.stop_seconds:.2f} s")
    assert stopped.exit_code == 0, stopped.server.log_tail()
    assert stopped.stop_seconds < SHUTDOWN_TIMEOUT_S + 5, (
        f"stop took {stopped.stop_seconds:.2f} s with shutdown_timeout_secs = {SHUTDOWN_TIMEOUT_S}"
    )


def test_delivery_in_flight_completes(stopped: Stopped, receiver: Receiver) -> None:
    [hit] = receiver.hits(stopped.quick_path)
    assert hit.finished is not None and hit.finished < stopped.signalled_at + QUICK_S + 1, (
        "the receiver never answered the in-flight delivery"
    )
    job = stopped.jobs[stopped.quick["id"]]
    assert job["status"] == "completed", job
    assert job["result"] == "answered during shutdown", job
    [attempt] = stopped.attempts[job["id"]]
    assert attempt["outcome"] == "completed" and attempt["status_code"] == 200, attempt


def test_nothing_is_left_running(stopped: Stopped) -> None:
    running = [j for j in stopped.jobs.values() if j["status"] == "running"]
    assert running == [], f"jobs left running after a clean stop: {running}"


def test_delivery_past_the_timeout_goes_back_to_pending(stopped: Stopped) -> None:
    job = stopped.jobs[stopped.slow["id"]]
    assert job["status"] == "pending" and job["attempt"] == 1, job
    assert job["last_error"] == INTERRUPTED, job
    [attempt] = stopped.attempts[job["id"]]
    assert attempt["outcome"] == "retry" and attempt["status_code"] is None, attempt
    assert attempt["error"] == INTERRUPTED, attempt
    # It ran from its claim until the shutdown timeout cut it off.
    assert (
        SHUTDOWN_TIMEOUT_S * 1000 - 100 <= attempt["duration_ms"] <= (SHUTDOWN_TIMEOUT_S + 5) * 1000
    ), (
        f"interrupted attempt lasted {attempt['duration_ms']} ms; the shutdown timeout is "
        f"{SHUTDOWN_TIMEOUT_S} s: {attempt}"
    )


def test_interrupted_job_is_delivered_after_restart_and_sigint_stops_cleanly(
    stopped: Stopped, receiver: Receiver
) -> None:
    srv = stopped.server
    srv.start()
    try:
        with srv.client() as api:
            job = api.wait_job(stopped.slow["id"], ("completed", "dead"), timeout=10)
    finally:
        code = srv.stop(signal.SIGINT)  # SIGINT (Ctrl-C) stops as cleanly as SIGTERM
    assert code == 0, srv.log_tail()
    assert job["status"] == "completed" and job["attempt"] == 2, job
    assert job["result"] == "again", job
    hits: list[Hit] = receiver.hits(stopped.slow_path)
    assert [h.headers["x-mininq-attempt"] for h in hits] == ["1", "2"], hits
    assert len(receiver.hits(stopped.quick_path)) == 1, "the completed job was delivered again"


def test_a_clean_stop_logs_nothing_above_info(make_server) -> None:
    """An idle server stopped with SIGTERM says it is stopping, and nothing alarming."""
    srv = make_server()
    with srv.client() as api:
        api.get("/health").expect(200)
    time.sleep(0.5)  # past start-up: every listener and the engine watch are running
    assert srv.stop() == 0, srv.log_tail()
    lines = [json.loads(line) for line in srv.log_text().splitlines() if line.startswith("{")]
    loud = [line for line in lines if line["level"] not in ("debug", "info")]
    assert lines and not loud, f"warnings or errors on a clean stop: {loud}"
