"""Tests of the test harness itself: receiver, API client, server process handling.

MininqServer is exercised with a stand-in server (a small http.server script
taking mininq's `serve` arguments), so its start/stop/kill logic is checked
independently of mininq.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import (
    ApiClient,
    MininqServer,
    Receiver,
    Reply,
    Response,
    ServerError,
    free_port,
    wait_until,
)
from support import server as server_module

# -- receiver ----------------------------------------------------------------


def test_receiver_records_requests_with_json(receiver: Receiver) -> None:
    path = receiver.new_path()
    with ApiClient(receiver.base_url) as client:
        before = time.time()
        resp = client.post(path + "?a=1", json={"n": 1}, headers={"X-Mininq-Job-Id": "j1"})
    assert resp.status == 200 and resp.json == {"ok": True}, resp
    [hit] = receiver.hits(path)
    assert hit.method == "POST"
    assert hit.path == path and hit.query == "a=1"
    assert hit.headers["x-mininq-job-id"] == "j1"
    assert hit.headers["content-type"] == "application/json"
    assert hit.json == {"n": 1} and json.loads(hit.body) == {"n": 1}
    assert before - 1 <= hit.received_at <= time.time()
    assert hit.finished is not None and hit.started <= hit.finished


def test_receiver_replies_in_order_then_repeats_the_last(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(
        path,
        Reply(503, b"busy"),
        Reply(429, b"slow down", headers={"Retry-After": "2"}),
        Reply(200, {"done": True}),
    )
    with ApiClient(receiver.base_url) as client:
        answers = [client.post(path, json={}) for _ in range(5)]
    assert [a.status for a in answers] == [503, 429, 200, 200, 200]
    assert answers[0].text == "busy"
    assert answers[1].headers["retry-after"] == "2"
    assert answers[4].json == {"done": True}
    assert len(receiver.hits(path)) == 5


def test_receiver_delay_keeps_the_request_in_flight(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, b"late", delay_s=0.3))
    result: list[Response] = []
    with ApiClient(receiver.base_url) as client:
        thread = threading.Thread(target=lambda: result.append(client.post(path, json={})))
        thread.start()
        [hit] = receiver.wait_for(path, 1, timeout=5)
        assert hit.finished is None, "a delayed request shows as in flight"
        assert receiver.in_flight(path) == 1
        thread.join(5)
    [resp] = result
    assert resp.status == 200
    assert hit.finished is not None
    held = hit.finished - hit.started
    assert 0.3 <= held < 1.5, f"delay held the request {held:.3f} s"
    assert resp.elapsed_ms >= 300
    assert receiver.in_flight(path) == 0


def test_receiver_wait_for_waits_and_reports_what_it_got(receiver: Receiver) -> None:
    path = receiver.new_path()

    def send_later() -> None:
        with ApiClient(receiver.base_url) as client:
            for i in range(3):
                time.sleep(0.05)
                client.post(path, json={"i": i})

    thread = threading.Thread(target=send_later)
    thread.start()
    hits = receiver.wait_for(path, 3, timeout=5)
    thread.join(5)
    assert [h.json for h in hits] == [{"i": 0}, {"i": 1}, {"i": 2}]

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"expected 4 request\(s\) within 0.2 s, got 3"):
        receiver.wait_for(path, 4, timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_receiver_measures_peak_concurrency(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, b"ok", delay_s=0.5))
    client = ApiClient(receiver.base_url)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(client.post(path, json={}).status))
        for _ in range(5)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    took = time.monotonic() - started
    client.close()
    assert statuses == [200] * 5
    assert receiver.max_concurrency(path) == 5, f"peak {receiver.max_concurrency(path)}"
    assert took < 2.0, f"5 parallel 0.5 s requests took {took:.2f} s"
    assert client.connections_opened == 5
    assert receiver.in_flight(path) == 0


def test_receiver_clear_forgets_a_path(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(500))
    with ApiClient(receiver.base_url) as client:
        assert client.post(path).status == 500
        receiver.clear(path)
        assert receiver.hits(path) == [] and receiver.max_concurrency(path) == 0
        assert client.post(path).status == 200


def test_receiver_close_and_drop(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(200, b"bye", close=True))
    with ApiClient(receiver.base_url) as client:
        first = client.post(path, json={})
        second = client.post(path, json={})
    assert first.headers["connection"] == "close" and second.status == 200
    assert client.connections_opened == 2

    dropped = receiver.new_path()
    receiver.respond(dropped, Reply(drop=True))
    with (
        ApiClient(receiver.base_url) as client,
        pytest.raises((http.client.RemoteDisconnected, ConnectionError)),
    ):
        client.post(dropped, json={})
    assert len(receiver.hits(dropped)) == 1


def test_receiver_reads_chunked_bodies(receiver: Receiver) -> None:
    path = receiver.new_path()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    conn.request("POST", path, body=iter([b'{"a":', b" 1}"]), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert receiver.hits(path)[0].json == {"a": 1}


def test_separate_receiver_closes_cleanly() -> None:
    recv = Receiver()
    path = recv.new_path()
    recv.respond(path, Reply(delay_s=30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ApiClient(recv.base_url, timeout=10).post(path)
        except (OSError, http.client.HTTPException) as exc:  # closed without an answer
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    recv.wait_for(path, 1)
    started = time.monotonic()
    recv.close()
    thread.join(5)
    assert time.monotonic() - started < 2.0
    assert errors, "the pending request ends when the receiver closes"


# -- client ------------------------------------------------------------------


def test_client_reuses_one_keep_alive_connection(receiver: Receiver) -> None:
    path = receiver.new_path()
    with ApiClient(receiver.base_url) as client:
        for i in range(10):
            assert client.get(path, i=i).status == 200
    assert client.connections_opened == 1


def test_client_reconnects_once_when_the_server_closed_the_connection() -> None:
    """A server that answers with keep-alive, then closes the idle connection anyway."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with ApiClient(f"http://127.0.0.1:{port}") as client:
            first = client.get("/a")
            time.sleep(0.05)  # let the close reach us
            second = client.post("/b", json={"x": 1})
        assert (first.status, second.status, second.text) == (200, 200, "ok")
        assert client.connections_opened == 2 and len(accepted) == 2
    finally:
        listener.close()


def test_client_one_connection_per_thread(receiver: Receiver) -> None:
    path = receiver.new_path()
    client = ApiClient(receiver.base_url)

    def work() -> None:
        for _ in range(5):
            assert client.get(path).status == 200

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    client.close()
    assert len(receiver.hits(path)) == 20
    assert client.connections_opened == 4


def test_client_query_headers_token_and_raw_bodies(receiver: Receiver) -> None:
    path = receiver.new_path()
    with ApiClient(receiver.base_url, token="s3cret") as client:
        client.get(path, queue="q 1", status=None, flag=True, limit=5)
        client.post(path, raw=b"{not json", headers={"content-type": "text/plain"})
        client.post(path, raw=b"[]", headers={"Content-Type": None, "Authorization": None})
        client.put(path, json={"a": [1]})
        client.delete(path)
        client.post(path)
    hits = receiver.hits(path)
    assert hits[0].query == "queue=q+1&flag=true&limit=5"
    assert hits[0].headers["authorization"] == "Bearer s3cret"
    assert hits[1].headers["content-type"] == "text/plain" and hits[1].body == b"{not json"
    assert hits[1].json is None
    assert "content-type" not in hits[2].headers and "authorization" not in hits[2].headers
    assert hits[3].method == "PUT" and hits[3].json == {"a": [1]}
    assert hits[4].method == "DELETE"
    assert hits[5].headers["content-length"] == "0" and hits[5].body == b""


def test_response_expect_names_what_came_back(receiver: Receiver) -> None:
    path = receiver.new_path()
    receiver.respond(path, Reply(409, {"error": "queue exists", "status": 409}))
    with ApiClient(receiver.base_url) as client:
        resp = client.post(path, json={})
    assert resp.expect(409, 400) == {"error": "queue exists", "status": 409}
    with pytest.raises(
        AssertionError, match=r"POST /hook/\w+: expected HTTP 201, got 409: .*queue exists"
    ):
        resp.expect(201)


def test_wait_until_returns_the_value_or_says_what_was_seen() -> None:
    calls: list[int] = []

    def third_time() -> str | None:
        calls.append(1)
        return "done" if len(calls) >= 3 else None

    assert wait_until(third_time) == "done" and len(calls) == 3
    with pytest.raises(AssertionError, match=r"still 7 \(waited 0\.1\d s\)"):
        wait_until(lambda: None, timeout=0.1, message=lambda: "still 7")


# -- server process handling, with a stand-in server -----------------------------

STANDIN = r'''
"""Stand-in for `mininq serve`: serves GET /health, behaves as STANDIN_MODE says."""
import argparse, json, os, signal, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--db-path")
parser.add_argument("--config")
args, extra = parser.parse_known_args()
mode = os.environ.get("STANDIN_MODE", "").split(",")
env = {k: v for k, v in os.environ.items() if k.startswith(("MININQ_", "STANDIN_"))}
print(json.dumps({"argv": sys.argv[1:], "extra": extra, "cwd": os.getcwd(), "env": env}), flush=True)
if "exit-early" in mode:
    sys.exit(3)

LIFETIME = 120  # children end by themselves even if the harness failed to kill them
SLEEPER = "import signal, time\n" + (
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if "orphan" in mode else ""
) + f"time.sleep({LIFETIME})\n"
children = []
if "child" in mode or "orphan" in mode:
    children.append(subprocess.Popen([sys.executable, "-c", SLEEPER]))
if "escapee" in mode:
    # A grandchild that leaves the session: only the process tree still links it.
    children.append(subprocess.Popen(
        [sys.executable, "-c", f"import os, subprocess, sys; subprocess.Popen([sys.executable, '-c', "
         f"'import time; time.sleep({LIFETIME})'], start_new_session=True).wait()"]))

def on_signal(signum, frame):
    if "ignore-term" in mode and signum == signal.SIGTERM:
        return
    if "orphan" not in mode:
        for child in children:
            child.terminate()
            child.wait()
    os._exit(int(os.environ.get("STANDIN_EXIT_CODE", "0")))

signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 503 if "never-healthy" in mode else 200
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        self.send_response(status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

time.sleep(float(os.environ.get("STANDIN_START_DELAY", "0")))
ThreadingHTTPServer((args.host, args.port), Health).serve_forever()
'''

Factory = Callable[..., MininqServer]


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[Factory]:
    """Make MininqServers that run the stand-in script; all are killed at test end."""
    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    made: list[MininqServer] = []

    def make(mode: str = "", env: dict[str, str] | None = None, **kwargs: object) -> MininqServer:
        srv = MininqServer(
            tmp_path / f"srv{len(made)}",
            env={"STANDIN_MODE": mode, **(env or {})},
            command=[sys.executable, str(script)],
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(srv)
        return srv

    yield make
    for srv in made:
        if srv.proc is not None:
            srv.kill9()
    # Only this test's servers: the session's shared server may be running.
    assert standins_running() == []


def standins_running() -> list[MininqServer]:
    """Running servers of this module's stand-in kind (the session's shared
    mininq server may be running beside them)."""
    return [
        s for s in server_module.running_servers()
        if any(str(part).endswith("standin.py") for part in s.command)
    ]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_server_start_passes_args_env_config_and_stops_cleanly(
    standin: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MININQ_PORT", "1")  # a developer's shell must not leak in
    srv = standin(
        config_toml="[worker]\nconcurrency = 2\n",
        env={"MININQ_LOG_LEVEL": "debug"},
        args=["--log-level", "debug"],
    )
    srv.start()
    assert srv.running and srv.start_seconds is not None and 0 < srv.start_seconds < 20
    assert srv.url == f"http://127.0.0.1:{srv.port}"
    assert srv.client().get("/health").json["pid"] == srv.pid
    started = json.loads(srv.log_text().splitlines()[0])
    assert started["argv"] == [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(srv.port),
        "--db-path",
        str(srv.db_path),
        "--config",
        str(srv.workdir / "mininq.toml"),
        "--log-level",
        "debug",
    ]
    assert srv.db_path == srv.workdir / "mininq.db"
    assert (srv.workdir / "mininq.toml").read_text() == "[worker]\nconcurrency = 2\n"
    assert Path(started["cwd"]) == srv.workdir
    assert started["env"] == {"MININQ_LOG_LEVEL": "debug", "STANDIN_MODE": ""}
    assert standins_running() == [srv]

    assert srv.stop() == 0
    assert not srv.running and standins_running() == []
    print(f"stand-in start: {srv.start_seconds * 1000:.0f} ms")


def test_server_without_config_passes_no_config_flag(standin: Factory) -> None:
    srv = standin(port=free_port())
    srv.start()
    argv = json.loads(srv.log_text().splitlines()[0])["argv"]
    assert "--config" not in argv and srv.config_path is None
    assert not (srv.workdir / "mininq.toml").exists()
    srv.stop()


def test_server_stop_with_sigint_returns_the_exit_code(standin: Factory) -> None:
    srv = standin(env={"STANDIN_EXIT_CODE": "7"}).start()
    assert srv.stop(signal.SIGINT) == 7


def test_server_that_exits_during_start_up_is_reported_with_its_log(standin: Factory) -> None:
    srv = standin("exit-early")
    with pytest.raises(
        ServerError, match=r"(?s)exited with code 3 during start-up.*last 60 lines.*argv"
    ):
        srv.start()
    assert not srv.running and standins_running() == []


def test_server_that_never_gets_healthy_times_out_and_is_killed(standin: Factory) -> None:
    srv = standin("never-healthy,child")
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"did not answer GET /health 200 within 1.0 s"):
        srv.start(timeout=1.0)
    took = time.monotonic() - started
    assert took < 4, f"start(timeout=1) gave up after {took:.2f} s"
    assert not srv.running and standins_running() == []


def test_server_waits_for_a_slow_start(standin: Factory) -> None:
    srv = standin(env={"STANDIN_START_DELAY": "0.5"}).start()
    assert srv.start_seconds is not None and srv.start_seconds >= 0.5
    srv.stop()


def test_kill9_kills_the_group_and_escaped_descendants_then_restart(standin: Factory) -> None:
    srv = standin("child,escapee").start()
    wait_until(lambda: len(srv.pids()) == 4, timeout=5, message=lambda: f"pids {srv.pids()}")
    pids = srv.pids()
    assert pids[0] == srv.pid
    port, db = srv.port, srv.db_path

    srv.kill9()
    assert srv.returncode == -signal.SIGKILL
    assert [p for p in pids if alive(p)] == []
    assert standins_running() == []

    srv.restart()
    assert srv.running and srv.port == port and srv.db_path == db and srv.starts == 2
    assert srv.pid not in pids
    lines = srv.log_text().splitlines()
    assert len(lines) == 2, "the log is appended across restarts"
    assert srv.log_text(since_start=True).splitlines() == lines[1:]
    srv.stop()


def test_stop_that_times_out_kills_the_group(standin: Factory) -> None:
    srv = standin("ignore-term,child").start()
    wait_until(lambda: len(srv.pids()) == 2, timeout=5)
    pids = srv.pids()
    with pytest.raises(ServerError, match=r"did not exit within 0.5 s after SIGTERM"):
        srv.stop(timeout=0.5)
    assert [p for p in pids if alive(p)] == []
    assert standins_running() == []


def test_stop_reports_and_kills_orphans(standin: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = standin("orphan").start()
    wait_until(lambda: len(srv.pids()) == 2, timeout=5)
    child = srv.pids()[1]
    started = time.monotonic()
    with pytest.raises(ServerError, match=rf"exited with code 0 but left processes \[{child}\]"):
        srv.stop(orphan_grace=0.3)
    assert not alive(child)
    assert 0.3 <= time.monotonic() - started < 3


def test_stop_without_orphan_check_still_kills_them(standin: Factory) -> None:
    srv = standin("orphan").start()
    wait_until(lambda: len(srv.pids()) == 2, timeout=5)
    child = srv.pids()[1]
    assert srv.stop(orphan_grace=None) == 0
    assert not alive(child)


def test_context_manager_starts_and_stops(standin: Factory) -> None:
    with standin("child") as srv:
        assert srv.client().get("/health").status == 200
        wait_until(lambda: len(srv.pids()) == 2, timeout=5)
        pids = srv.pids()
    assert srv.returncode == 0
    assert [p for p in pids if alive(p)] == []


def test_start_refuses_a_port_in_use(standin: Factory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        srv = standin(port=taken.getsockname()[1])
        with pytest.raises(ServerError, match="already in use"):
            srv.start()
    assert srv.proc is None


def test_stop_all_kills_what_a_failed_test_left(standin: Factory) -> None:
    srv = standin("child").start()
    wait_until(lambda: len(srv.pids()) == 2, timeout=5)
    pids = srv.pids()
    # Limited to this test's server: the session's shared server may be running.
    assert server_module.stop_all(only=[srv]) == [srv.url]
    assert [p for p in pids if alive(p)] == []
    assert server_module.stop_all(only=[srv]) == []


def test_environment_runs_source_or_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(server_module.BINARY_ENV, raising=False)
    srv = MininqServer(tmp_path / "a", port=free_port())
    assert srv.command[:3] == [sys.executable, "-m", "mininq"]
    assert srv.environment()["PYTHONPATH"].split(os.pathsep)[0] == str(server_module.REPO_ROOT)
    assert "source" in server_module.describe_target()

    monkeypatch.setenv(server_module.BINARY_ENV, "/opt/mininq")
    assert srv.command[:2] == ["/opt/mininq", "serve"]
    assert srv.environment()["TMPDIR"] == str(srv.workdir / "tmp")
    assert server_module.BINARY_ENV not in srv.environment()
    assert "/opt/mininq" in server_module.describe_target()
