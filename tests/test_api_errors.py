"""Errors of SPEC §5: the shape `{"error": str, "status": int}` for every failure,
400 for malformed JSON, 404/405 for unknown routes and methods, 413 above
`server.max_body_bytes`, and no 500 for any input (a seeded fuzz run over
bodies, queries and paths of every route)."""

from __future__ import annotations

import json
import random
import socket
import string
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import ApiClient, MininqServer, Response

NOWHERE = "http://127.0.0.1:9/never"
FUZZ_SEED = 20261127
FUZZ_REQUESTS = 200
BODY_ROUTES = [
    ("POST", "/jobs"),
    ("POST", "/jobs/batch"),
    ("POST", "/queues"),
    ("PUT", "/queues/{queue}"),
    ("POST", "/schedules"),
    ("PUT", "/schedules/{schedule}"),
]


def assert_error_shape(resp: Response, status: int | None = None) -> dict:
    """A JSON error body whose `status` is the HTTP status; never a 5xx."""
    assert resp.status < 500, (
        f"server error: {resp.method} {resp.path} -> {resp.status} {resp.text}"
    )
    if status is not None:
        assert resp.status == status, resp
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json
    assert isinstance(body, dict) and set(body) == {"error", "status"}, resp
    assert isinstance(body["error"], str) and body["error"], resp
    assert body["status"] == resp.status, resp
    assert "Traceback" not in body["error"], resp
    return body


@pytest.fixture(scope="module")
def targets(api: ApiClient) -> dict[str, str]:
    """A real queue and schedule for the routes that need one."""
    queue = f"err-{time.monotonic_ns()}"
    api.post("/queues", {"name": queue, "paused": True}).expect(201)
    schedule = api.post(
        "/schedules",
        {"cron_expression": "0 0 0 1 1 *", "callback_url": NOWHERE, "queue_name": queue,
         "enabled": False},
    ).expect(201)  # fmt: skip
    job = api.post("/jobs", {"callback_url": NOWHERE, "queue_name": queue}).expect(201)
    return {"queue": queue, "schedule": schedule["id"], "job": job["id"]}


def route(path: str, targets: dict[str, str]) -> str:
    return path.format(**targets)


# -- malformed requests -----------------------------------------------------------


@pytest.mark.parametrize("method, path", BODY_ROUTES)
@pytest.mark.parametrize(
    "raw",
    [b"{", b'{"a": }', b"{'single': 1}", b"nul", b"[1,]", b'{"a": 1} extra', b"\xff\xfe",
     b'{"a": NaN}', b'{"a": Infinity}', b"\xef\xbb\xbf{}", b"[" * 2000 + b"]" * 2000],
)  # fmt: skip
def test_malformed_json_is_400_naming_the_body(api, targets, method, path, raw):
    body = assert_error_shape(api.request(method, route(path, targets), raw=raw), 400)
    assert body["error"].startswith("body:"), body


@pytest.mark.parametrize("method, path", BODY_ROUTES)
@pytest.mark.parametrize("raw", [b"", b"   ", b"null", b"[]", b'"text"', b"42", b"true"])
def test_a_body_that_is_not_an_object_is_400(api, targets, method, path, raw):
    resp = api.request(method, route(path, targets), raw=raw)
    body = assert_error_shape(resp, 400)
    assert body["error"].split(":")[0] in ("body", "jobs"), body


def test_content_type_is_not_required(api, targets):
    resp = api.post(
        "/jobs",
        raw=json.dumps({"callback_url": NOWHERE, "queue_name": targets["queue"]}).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert resp.expect(201)["queue_name"] == targets["queue"]


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/nothing"), ("POST", "/job"), ("GET", "/jobs/x/y/z"), ("GET", "//jobs"),
     ("GET", "/queues/a/b/c"), ("DELETE", "/schedules/x/trigger/now")],
)  # fmt: skip
def test_unknown_routes_are_404_json(api, method, path):
    assert_error_shape(api.request(method, path), 404)


@pytest.mark.parametrize(
    "method, path",
    [("PATCH", "/jobs"), ("PUT", "/jobs"), ("DELETE", "/jobs"), ("POST", "/health"),
     ("OPTIONS", "/jobs"), ("POST", "/jobs/{job}"), ("GET", "/jobs/{job}/retry"),
     ("PUT", "/metrics"), ("GET", "/queues/{queue}/pause"), ("DELETE", "/jobs/batch")],
)  # fmt: skip
def test_wrong_methods_are_405_json(api, targets, method, path):
    body = assert_error_shape(api.request(method, route(path, targets)), 405)
    assert method in body["error"], body


def _raw_exchange(server: MininqServer, request: bytes) -> tuple[int, dict]:
    """Send bytes as they are; return the status and the JSON body of the answer."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536) or b""
        head, _, rest = data.partition(b"\r\n\r\n")
        headers = dict(
            line.decode().lower().split(": ", 1)
            for line in head.split(b"\r\n")[1:]
            if b": " in line
        )
        length = int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    assert headers.get("content-type", "").startswith("application/json"), head
    return int(head.split()[1]), json.loads(rest[:length])


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /jobs?%zz=1 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /jobs/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /queues/%C0%AF HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /jobs?limit=%C0 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_broken_http_gets_a_json_error(server, request_bytes, status):
    got, body = _raw_exchange(server, request_bytes)
    assert got == status and set(body) == {"error", "status"} and body["status"] == got, body


# -- 413 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    srv = MininqServer(
        tmp_path_factory.mktemp("small-body"), config_toml="[server]\nmax_body_bytes = 2048\n"
    )
    with srv:
        yield srv


def _padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with spaces to exactly `size` bytes."""
    raw = json.dumps(body).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_bodies_up_to_the_limit_are_taken_above_it_413(small_server):
    with small_server.client() as client:
        job = {"callback_url": NOWHERE, "queue_name": "small", "delay_ms": 3_600_000}
        client.post("/jobs", raw=_padded(job, 2048)).expect(201)
        body = assert_error_shape(client.post("/jobs", raw=_padded(job, 2049)), 413)
        assert "2048" in body["error"], body
        assert_error_shape(client.post("/jobs", raw=b"x" * 100_000), 413)
        for method, path in BODY_ROUTES:
            resp = client.request(method, path.format(queue="small", schedule="x"),
                                  raw=_padded({"a": 1}, 4096))  # fmt: skip
            assert_error_shape(resp, 413)
        assert client.get("/health").expect(200)["status"] == "ok"


def test_a_chunked_body_over_the_limit_is_413(small_server):
    body = b"[" + b" " * 5000 + b"]"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 1000]), body[i : i + 1000])
        for i in range(0, len(body), 1000)
    )
    status, error = _raw_exchange(
        small_server,
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert (status, error["status"]) == (413, 413), error


def test_a_content_length_over_the_limit_is_413_before_the_body_arrives(small_server):
    status, error = _raw_exchange(
        small_server, b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n{}"
    )
    assert (status, error["status"]) == (413, 413), error


# -- fuzz -----------------------------------------------------------------------

WEIRD_STRINGS = [
    "", " ", "\u0000", "\u00b2", "\uff11", "-1", "1e3", "0x10", "NaN", "null", "true", "[]", "{}",
    "9" * 40, "-" * 36, "01900000-0000-7000-8000-000000000000", "../../etc/passwd", "%00", "%",
    "é", "\U0001f600", "<script>alert(1)</script>", "'; DROP TABLE jobs; --", "a" * 3000,
    "pending", "dead", "running", "default", "1", "0", "50", "1001",
]  # fmt: skip
WEIRD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, 1.0, 2**63, -(2**63) - 1, 1e308, "", "x", [], {}, [[[]]],
    {"a": {"b": [1, {"c": None}]}}, NOWHERE, "http://", "https://example.com/x",
    "2026-11-27T10:00:00Z", "2026-02-30T00:00:00Z", "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-23:59", "* * * * *", "61 * * * *", "UTC", "Nowhere/Zone",
    "exponential", "fixed", {"X-A": "b"}, {"Content-Length": "1"}, *WEIRD_STRINGS[:12],
]  # fmt: skip
FIELDS = [
    "callback_url", "queue_name", "priority", "payload", "headers", "max_retries",
    "retry_backoff", "base_delay_ms", "max_delay_ms", "timeout_ms", "idempotency_key",
    "delay_ms", "run_at", "name", "max_concurrency", "rate_limit_rps", "rate_limit_burst",
    "paused", "cron_expression", "timezone", "enabled", "jobs", "status", "id", "",
]  # fmt: skip
# Every route with the methods it takes; the fuzz mostly uses those (to reach the
# validation behind them) and now and then any other.
ROUTES = [
    ("/jobs/{x}", "GET DELETE"), ("/jobs/{x}/attempts", "GET"), ("/jobs/{x}/retry", "POST"),
    ("/queues/{x}", "GET PUT DELETE"), ("/queues/{x}/pause", "POST"),
    ("/queues/{x}/resume", "POST"), ("/queues/{x}/retry-dead", "POST"),
    ("/queues/{x}/purge", "POST"), ("/schedules/{x}", "GET PUT DELETE"),
    ("/schedules/{x}/trigger", "POST"), ("/jobs", "GET POST"), ("/jobs/batch", "POST"),
    ("/queues", "GET POST"), ("/schedules", "GET POST"), ("/metrics", "GET"),
    ("/health", "GET"), ("/openapi.json", "GET"), ("/metrics/prometheus", "GET"),
    ("/{x}", "GET"),
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def _path_segment(rng: random.Random) -> str:
    """A path segment that http.client will send (printable, %-escaped otherwise)."""
    choice = rng.random()
    if choice < 0.4:
        text = rng.choice(WEIRD_STRINGS)
    elif choice < 0.7:
        text = "".join(rng.choice(string.printable[:94]) for _ in range(rng.randint(1, 80)))
    else:
        text = "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 20)))
    safe = string.ascii_letters + string.digits + "-._~:@!$&'()*+,;="
    return (
        "".join(
            c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
            for c in text
        )
        or "x"
    )


def _body(rng: random.Random, targets: dict[str, str]) -> tuple[Any, bytes | None]:
    """Either a JSON value built from odd parts (json) or broken bytes (raw)."""
    kind = rng.random()
    if kind < 0.55:
        body = {rng.choice(FIELDS): rng.choice(WEIRD_VALUES) for _ in range(rng.randint(0, 6))}
        if rng.random() < 0.5:
            body.setdefault("callback_url", NOWHERE)
        if "queue_name" in body and rng.random() < 0.8:
            body["queue_name"] = targets["queue"]  # keep what slips through undelivered
        if rng.random() < 0.2:
            body = {"jobs": [body] * rng.randint(0, 3)}
        return body, None
    if kind < 0.75:
        valid = json.dumps({"callback_url": NOWHERE, "queue_name": targets["queue"],
                            "payload": {"k": list(range(5))}}).encode()  # fmt: skip
        cut = rng.randint(0, len(valid) - 1)
        return None, valid[:cut] + bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 4)))
    if kind < 0.9:
        return None, bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 300)))
    depth = rng.randint(100, 3000)
    return None, b'{"payload": ' + b"[" * depth + b"]" * depth + b"}"


def _query(rng: random.Random) -> dict[str, str]:
    keys = ["limit", "offset", "after", "status", "queue", "schedule_id", "x", "limit[]", ""]
    return {rng.choice(keys) or "k": rng.choice(WEIRD_STRINGS) for _ in range(rng.randint(0, 4))}


def fuzz_requests(
    rng: random.Random, targets: dict[str, str]
) -> Iterator[Callable[[ApiClient], Response]]:
    for _ in range(FUZZ_REQUESTS):
        template, allowed = rng.choice(ROUTES)
        method = rng.choice(allowed.split() if rng.random() < 0.85 else METHODS)
        x = rng.choice([_path_segment(rng), targets["queue"], targets["schedule"], targets["job"]])
        path = template.replace("{x}", x)
        query = _query(rng) if rng.random() < 0.6 else None
        json_body, raw = _body(rng, targets) if method in ("POST", "PUT", "PATCH") else (None, None)

        def send(client: ApiClient, m=method, p=path, q=query, j=json_body, r=raw) -> Response:
            return client.request(m, p, query=q, json=j, raw=r)

        yield send


def test_fuzz_never_gets_a_500(server, api, targets):
    rng = random.Random(FUZZ_SEED)
    log_before = len(server.log_text())
    statuses: dict[int, int] = {}
    for n, send in enumerate(fuzz_requests(rng, targets)):
        resp = send(api)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        context = f"fuzz request {n} (seed {FUZZ_SEED}): {resp.method} {resp.path[:300]}"
        assert resp.status < 500, f"{context} -> {resp.status} {resp.text[:500]}"
        if resp.status >= 400:
            try:
                assert_error_shape(resp)
            except AssertionError as exc:
                raise AssertionError(f"{context}: {exc}") from None
        elif resp.path.split("?")[0] != "/metrics/prometheus":
            assert resp.headers["content-type"].startswith("application/json"), context
    assert sum(statuses.values()) == FUZZ_REQUESTS
    assert api.get("/health").expect(200)["status"] == "ok"
    new_log = server.log_text()[log_before:]
    assert "internal error" not in new_log and "Traceback" not in new_log, new_log[-3000:]
    print(f"fuzz statuses: {dict(sorted(statuses.items()))}")


def test_integers_beyond_64_bits_are_refused_not_rounded(api, receiver, qname):
    raw = (
        b'{"callback_url": "%s", "queue_name": "%s", "payload": {"n": 123456789012345678901234567890}}'
        % (receiver.url(receiver.new_path()).encode(), qname.encode())
    )
    r = api.post("/jobs", raw=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400, r.text
    assert r.json["error"].startswith("payload"), r.json
    long_string = b'{"callback_url": "%s", "queue_name": "%s", "payload": {"phone": "12345678901234567890"}}' % (
        receiver.url(receiver.new_path()).encode(), qname.encode())
    r = api.post("/jobs", raw=long_string, headers={"Content-Type": "application/json"})
    assert r.status == 201, r.text
    assert r.json["payload"] == {"phone": "12345678901234567890"}
    nan = b'{"callback_url": "%s", "payload": {"x": NaN}}' % receiver.url("/x").encode()
    assert api.post("/jobs", raw=nan).status == 400


def test_max_concurrency_null_restores_the_default(api, qname):
    api.post("/queues", json={"name": qname, "max_concurrency": 3}).expect(201)
    r = api.put(f"/queues/{qname}", json={"max_concurrency": None})
    assert r.status == 200, r.text
    assert r.json["max_concurrency"] == 10
