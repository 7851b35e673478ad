"""Property-based fuzzing of what the OpenAPI document can't describe, against a live server.

Hypothesis generates raw header and cookie bytes (sent over a plain socket),
callback URLs at the edges of URL parsing (IPv6 brackets, IDNA, ports out of
range, userinfo, very long hosts, control characters), numbers at the 64-bit
edges in every numeric field, and deep or huge JSON. Every answer must be a
non-5xx with no stack trace; a refusal must be a 400 naming the field; and the
server must log nothing at error level. Fixed seed, bounded examples.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import yarl
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from support import ApiClient, MininqServer, Response
from support.fuzz import (
    LogWatch,
    assert_nothing_delivered,
    no_delivery_server,
    raw_exchange,
    summary_lines,
)

from mininq import fields

SEED = 20261205
EXAMPLES = 150
SENT: Counter[str] = Counter()
NOWHERE = "http://127.0.0.1:9/never"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
)


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[MininqServer, ApiClient, LogWatch]]:
    with (
        no_delivery_server(tmp_path_factory.mktemp("fuzz-raw")) as server,
        server.client() as client,
    ):
        log = LogWatch(server)
        yield server, client, log
        summary_lines(request.config).append(
            f"hypothesis raw fuzz: seed {SEED}, at most {EXAMPLES} examples per test, "
            f"{sum(SENT.values())} requests sent "
            f"({', '.join(f'{k} {v}' for k, v in SENT.items())})"
        )
        # What the engine and scheduler logged after the last request counts too.
        assert not log.new_errors(), server.log_tail()
        assert_nothing_delivered(server)


@pytest.fixture(scope="module")
def fuzzed_with_token(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MininqServer, LogWatch]]:
    token = "fuzz-token-not-secret"
    with no_delivery_server(tmp_path_factory.mktemp("fuzz-raw-token"), token=token) as server:
        log = LogWatch(server)
        yield server, log
        assert not log.new_errors(), server.log_tail()
        assert_nothing_delivered(server)


@pytest.fixture(scope="module")
def schedule_id(fuzzed) -> str:
    _, client, _ = fuzzed
    body = {"cron_expression": "0 0 0 1 1 *", "callback_url": NOWHERE, "enabled": False}
    return client.post("/schedules", body).expect(201)["id"]


def _no_trace(resp_body: bytes) -> None:
    assert b"Traceback" not in resp_body and b'File "' not in resp_body, resp_body[:2000]


def _answered(resp: Response, log: LogWatch, *fields_named: str) -> None:
    """Not a 5xx, no stack trace, nothing logged at error level; a 4xx names one of
    `fields_named` or a part of one (`name:`, `name.x:`, `name[3].x:`) first."""
    errors = log.new_errors()
    context = f"{resp.method} {resp.path[:200]} -> {resp.status} {resp.text[:500]}"
    assert resp.status < 500, f"{context}\nserver logged: {errors}"
    _no_trace(resp.body)
    assert not errors, f"{context}\nserver logged: {errors}"
    if resp.status >= 400 and fields_named:
        message = resp.json["error"]
        assert any(re.match(rf"{re.escape(name)}[:.\[]", message) for name in fields_named), context


# -- callback URLs ------------------------------------------------------------------

HOSTS = st.one_of(
    st.sampled_from(
        [
            "[::1",
            "[::1]",
            "[::1%25lo]",
            "[fe80::1%lo]",
            "[::ffff:127.0.0.1]",
            "[v1.x]",
            "[",
            "]",
            "[]",
            "[::1]]",
            "::1",
            "0",
            "127.0.0.1",
            "256.1.1.1",
            "1.2.3.4.5",
            "xn--",
            "xn--a",
            "xn--zz-",
            "a..b",
            ".",
            "-a-",
            "localhost.",
            "℀",
            "ß.de",
            "\u00ad",
            "a\u0300",
            "\u200d",
            "例え.テスト",
            "EXAMPLE.com",
            "%41",
            "a%00b",
            "a b",
        ]
    ),
    st.text(min_size=1, max_size=24),
    st.builds(
        lambda n, label: ".".join([label * n] * 5),
        st.integers(40, 70),
        st.sampled_from(["a", "é", "1"]),
    ),
)
PORTS = st.one_of(
    st.none(),
    st.sampled_from(["", "0", "1", "65535", "65536", "99999", "-1", "+80", "8_0", "٣", " 80"]),
    st.integers(-(2**64), 2**64).map(str),
    st.text(max_size=6),
)
URLS = st.builds(
    lambda scheme, user, host, port, path: (
        f"{scheme}://{'' if user is None else user + '@'}{host}"
        f"{'' if port is None else ':' + port}/{path}"
    ),
    st.sampled_from(["http", "https", "HTTP", "ftp", "", "http:"]),
    st.one_of(st.none(), st.text(max_size=16), st.just("u:p"), st.just("a@b")),
    HOSTS,
    PORTS,
    st.text(max_size=30),
)


def _check_url_answer(resp: Response, log: LogWatch, field: str, url: str) -> None:
    _answered(resp, log, field)
    assert resp.status in (200, 201, 400), resp
    if resp.status < 400:  # taken: the parser deliveries use must be able to request it
        assert yarl.URL(url).raw_host, url


@seed(SEED)
@FUZZ
@given(url=URLS, where=st.sampled_from(["job", "batch", "schedule", "schedule-update"]))
def test_callback_urls_at_the_edges_of_parsing(fuzzed, schedule_id, url: str, where: str):
    _, client, log = fuzzed
    SENT["urls"] += 1
    if where == "job":
        resp = client.post("/jobs", {"callback_url": url, "delay_ms": 3_600_000})
        _check_url_answer(resp, log, "callback_url", url)
    elif where == "batch":
        jobs = [{"callback_url": NOWHERE}, {"callback_url": url}]
        _check_url_answer(
            client.post("/jobs/batch", {"jobs": jobs}), log, "jobs[1].callback_url", url
        )
    elif where == "schedule":
        body = {"cron_expression": "0 0 0 1 1 *", "callback_url": url, "enabled": False}
        _check_url_answer(client.post("/schedules", body), log, "callback_url", url)
    else:
        resp = client.put(f"/schedules/{schedule_id}", {"callback_url": url})
        _check_url_answer(resp, log, "callback_url", url)


@pytest.mark.parametrize(
    "url",
    ["http://[::1/x", "http://h:99999/", "http://h:0/", "http://u:p@[::1/", "http://℀/",
     "http://" + "a" * 64 + ".com/", "http://" + ".".join(["a" * 60] * 5) + "/", "http://h/\x00",
     "http://h/\x7f", "http://a..b/", "http://[::1]:65536/", "http://h:-1/", "http:///x",
     "http://\u00ad/", "ftp://h/", "http://h:8_0/"],
)  # fmt: skip
def test_known_bad_callback_urls_are_400_naming_the_field(fuzzed, url):
    _, client, log = fuzzed
    SENT["urls"] += 2
    resp = client.post("/jobs", {"callback_url": url})
    _answered(resp, log, "callback_url")
    assert resp.status == 400, resp
    resp = client.post("/jobs/batch", {"jobs": [{"callback_url": NOWHERE}, {"callback_url": url}]})
    _answered(resp, log, "jobs[1].callback_url")
    assert resp.status == 400, resp


# -- cron expressions and time zones ---------------------------------------------------

CRON_ATOMS = st.one_of(
    st.sampled_from(["*", "?", "L", "W", "H", "5L", "1W", "1#5", "LW", "jan", "MON", "sun-sat",
                     "0", "59", "60", "31", "32", "-1", "\u0661", "99999999999999999999"]),
    st.integers(0, 70).map(str),
)  # fmt: skip
CRON_FIELDS = st.builds(
    lambda a, op, b: a if op is None else f"{a}{op}{b}",
    CRON_ATOMS,
    st.sampled_from([None, "-", "/", ","]),
    CRON_ATOMS,
)
CRONS = st.one_of(
    st.lists(CRON_FIELDS, min_size=4, max_size=7).map(" ".join),
    st.sampled_from(["@yearly", "@monthly", "@weekly", "@daily", "@hourly", "@reboot", "@every"]),
)
ZONES = st.one_of(
    st.sampled_from(["UTC", "Europe/Prague", "America/St_Johns", "Pacific/Kiritimati",
                     "Factory", "localtime", "../../etc/passwd", "Etc/GMT+12", "EST5EDT"]),
    st.text(min_size=1, max_size=64),
)  # fmt: skip


@seed(SEED)
@FUZZ
@given(cron=CRONS, zone=ZONES, enabled=st.booleans())
def test_cron_expressions_and_zones(fuzzed, cron: str, zone: str, enabled: bool):
    """Enabled ones are fired by the scheduler too: its log is watched like the API's."""
    _, client, log = fuzzed
    SENT["cron"] += 1
    body = {"cron_expression": cron, "timezone": zone, "callback_url": NOWHERE,
            "enabled": enabled}  # fmt: skip
    resp = client.post("/schedules", body)
    _answered(resp, log, "cron_expression", "timezone")
    assert resp.status in (201, 400), resp


# -- numbers at the 64-bit edges ------------------------------------------------------

EDGE_LITERALS = [
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616",
    "9007199254740992", "9007199254740993", "2147483647", "2147483648", "-2147483649",
    "1e400", "-1e400", "1e308", "4.9e-324", "-0", "-0.0", "0.0", "1E2", "1.0", "NaN",
    "Infinity", "-Infinity", "1" + "0" * 5000, "1" + "0" * 400, "0x10", "01", "+1", ".5",
]  # fmt: skip
NUMBERS = st.one_of(
    st.sampled_from(EDGE_LITERALS),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


def _numeric(table: dict[str, fields.Field]) -> list[str]:
    return [name for name, spec in table.items() if spec.kind in ("int", "number")]


NUMERIC_TARGETS = (
    [("POST", "/jobs", name) for name in [*_numeric(fields.JOB), "payload"]]
    + [("POST", "/queues", name) for name in _numeric(fields.QUEUE_CREATE)]
    + [("PUT", "/queues/{queue}", name) for name in _numeric(fields.QUEUE_UPDATE)]
    + [("POST", "/schedules", name) for name in _numeric(fields.SCHEDULE_CREATE)]
    + [("GET", "/jobs", "limit"), ("GET", "/jobs", "offset"), ("GET", "/schedules", "limit")]
)


def _base_body(path: str, queue: str) -> dict[str, Any]:
    if path == "/jobs":
        return {"callback_url": NOWHERE, "delay_ms": 3_600_000}
    if path == "/queues":
        return {"name": f"fz-{uuid.uuid4().hex[:12]}"}
    if path == "/schedules":
        return {"cron_expression": "0 0 0 1 1 *", "callback_url": NOWHERE, "enabled": False}
    return {}


@pytest.fixture(scope="module")
def queue(fuzzed) -> str:
    _, client, _ = fuzzed
    name = f"fz-{uuid.uuid4().hex[:12]}"
    client.post("/queues", {"name": name, "paused": True}).expect(201)
    return name


@seed(SEED)
@FUZZ
@given(target=st.sampled_from(NUMERIC_TARGETS), literal=NUMBERS)
def test_numbers_at_the_64_bit_edges(fuzzed, queue, target, literal: str):
    _, client, log = fuzzed
    method, path, name = target
    SENT["numbers"] += 1
    if method == "GET":
        resp = client.request("GET", path, query={name: literal})
        _answered(resp, log, name)
        return
    body = {k: v for k, v in _base_body(path, queue).items() if k != name}
    value = f'{{"n": {literal}}}' if name == "payload" else literal
    raw = json.dumps(body)[:-1].encode() + b"%s %s: %s}" % (
        b"," if body else b"",
        json.dumps(name).encode(),
        value.encode(),
    )
    resp = client.request(method, path.format(queue=queue), raw=raw)
    _answered(resp, log, name, "body")
    assert resp.status in (200, 201, 400), resp
    # Taken values come back as sent (burst shows null while the rate is unlimited).
    if resp.status < 400 and name in resp.json and name != "rate_limit_burst":
        answer = resp.json[name]["n"] if name == "payload" else resp.json[name]
        sent = json.loads(literal)
        assert answer == sent, f"{name} = {literal} came back as {answer!r}"


# -- deep and huge JSON ----------------------------------------------------------------


@st.composite
def _deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 20_000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")]))
    leaf = draw(
        st.sampled_from(
            [b"1", b"12345678901234567890", b'"x"', b"null", b"[]", b'"\\ud800"',
             b'["\\udc00", 12345678901234567890]', b'"\\ud83d\\ude00"']
        )
    )  # fmt: skip
    return opener * depth + leaf + closer * draw(st.sampled_from([depth, depth - 1, depth + 1]))


@st.composite
def _huge_json(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["array", "string", "object", "number"]))
    n = draw(st.integers(1, 200_000))
    if kind == "array":
        return b"[" + b",".join([b"1"] * n) + b"]"
    if kind == "string":
        return json.dumps(draw(st.text(min_size=1, max_size=3)) * n).encode()
    if kind == "object":
        return json.dumps({f"k{i}": i for i in range(min(n, 50_000))}).encode()
    return b"9" * min(n, 900_000)


@seed(SEED)
@FUZZ
@given(
    value=st.one_of(_deep_json(), _huge_json()),
    where=st.sampled_from(["payload", "body", "jobs", "headers", "schedule-payload"]),
)
def test_deep_and_huge_json(fuzzed, value: bytes, where: str):
    _, client, log = fuzzed
    SENT["json"] += 1
    job = b'{"callback_url": "%s", "delay_ms": 3600000, ' % NOWHERE.encode()
    if where == "payload":
        raw, path, named = job + b'"payload": ' + value + b"}", "/jobs", ("payload", "body")
    elif where == "body":
        raw, path, named = value, "/jobs", ()  # a whole body: any field may be named
    elif where == "jobs":
        raw, path, named = b'{"jobs": ' + value + b"}", "/jobs/batch", ("jobs", "body")
    elif where == "headers":
        raw, path, named = job + b'"headers": ' + value + b"}", "/jobs", ("headers", "body")
    else:
        raw = (
            b'{"cron_expression": "0 0 0 1 1 *", "enabled": false, "callback_url": "%s", '
            % (NOWHERE.encode())
            + b'"payload": '
            + value
            + b"}"
        )
        path, named = "/schedules", ("payload", "body")
    resp = client.request("POST", path, raw=raw)
    _answered(resp, log, *named)
    assert resp.status in (200, 201, 400, 413), resp


# -- raw header and cookie bytes -----------------------------------------------------

HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            b"Authorization",
            b"Cookie",
            b"Host",
            b"Content-Type",
            b"Content-Length",
            b"Accept",
            b"Transfer-Encoding",
            b"X-Forwarded-For",
            b"Referer",
            b"If-None-Match",
            b"Range",
            b"Connection",
            b"Expect",
            b"Accept-Encoding",
            b"User-Agent",
        ]
    ),
    st.binary(min_size=1, max_size=40).filter(lambda b: b":" not in b and b"\n" not in b),
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=60).map(lambda b: b"Bearer " + b),
    st.binary(max_size=60).map(lambda b: b"mininq_session=" + b + b"; a=b"),
    st.text(max_size=60).map(lambda t: t.encode("utf-8")),
)


METHOD_PATHS = st.sampled_from(
    [(b"GET", b"/jobs"), (b"GET", b"/health"), (b"GET", b"/dashboard"),
     (b"GET", b"/dashboard/login"), (b"POST", b"/dashboard/login"), (b"POST", b"/jobs"),
     (b"GET", b"/metrics/prometheus"), (b"GET", b"/static/app.css")]
)  # fmt: skip


@seed(SEED)
@FUZZ
@given(
    method_path=METHOD_PATHS,
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
)
def test_raw_header_and_cookie_bytes(fuzzed, method_path, headers):
    server, _, log = fuzzed
    SENT["headers"] += 1
    _send_raw_headers(server, log, method_path, headers)


@seed(SEED)
@FUZZ
@given(
    method_path=METHOD_PATHS, headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6)
)
def test_raw_header_and_cookie_bytes_with_a_token(fuzzed_with_token, method_path, headers):
    """With server.api_token set, Authorization and the session cookie are compared."""
    server, log = fuzzed_with_token
    SENT["headers with a token"] += 1
    _send_raw_headers(server, log, method_path, headers)


def _send_raw_headers(server: MininqServer, log: LogWatch, method_path, headers) -> None:
    method, path = method_path
    body = b'{"callback_url": "%s", "delay_ms": 3600000}' % NOWHERE.encode()
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: 127.0.0.1"]
    lines += [name + b": " + value.replace(b"\r\n", b" ") for name, value in headers]
    if method == b"POST":
        lines.append(b"Content-Length: %d" % len(body))
    request = b"\r\n".join(lines) + b"\r\n\r\n" + (body if method == b"POST" else b"")
    status, answer = raw_exchange(server.host, server.port, request)
    errors = log.new_errors()
    context = f"{request[:600]!r} -> {status} {answer[:300]!r}"
    assert status is None or status < 500, context
    _no_trace(answer)
    assert not errors, f"{context}\nserver logged: {errors}"


@pytest.mark.parametrize(
    "origin",
    [
        b"http://[::1",
        b"http://\xe2\x84\x80",
        b"http://h:99999",
        b"\xff\xfe",
        b"null",
        b"x" * 5000,
    ],
)
def test_origin_values_that_break_url_parsing(fuzzed, origin):
    """Origin is parsed as a URL for the same-origin rule on every request that changes
    something, token or not."""
    server, _, log = fuzzed
    SENT["headers"] += 1
    request = (
        b"POST /queues/nope/pause HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: %s\r\n"
        b"Content-Length: 0\r\n\r\n" % origin
    )
    status, answer = raw_exchange(server.host, server.port, request)
    errors = log.new_errors()
    context = f"Origin {origin[:60]!r} -> {status} {answer[:300]!r}; logged {errors}"
    assert status is not None and status < 500, context
    _no_trace(answer)
    assert not errors, context


@pytest.mark.parametrize("value", [b"\x80", b"\xff\xfe", b"100-continue\xc3", b"caf\xc3\xa9"])
def test_expect_values_that_are_not_ascii(fuzzed, value):
    """Sanic refuses an unknown Expect with a message quoting it (undecodable bytes
    as lone surrogates): the JSON error must still be written."""
    server, _, log = fuzzed
    SENT["headers"] += 1
    body = b'{"callback_url": "%s", "delay_ms": 3600000}' % NOWHERE.encode()
    request = (
        b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: %s\r\nContent-Length: %d\r\n\r\n%s"
    )
    status, answer = raw_exchange(server.host, server.port, request % (value, len(body), body))
    errors = log.new_errors()
    assert status == 417 and json.loads(answer)["status"] == 417, (status, answer)
    assert not errors, errors


LONG = '"n": 12345678901234567890'  # sends the body to the standard JSON parser


@pytest.mark.parametrize(
    "path, body",
    [
        ("/jobs", f'{{"callback_url": "http://h/\\ud800", "payload": {{{LONG}}}}}'),
        ("/jobs", f'{{"callback_url": "{NOWHERE}", "idempotency_key": "\\udfff", {LONG}}}'),
        ("/jobs", f'{{"callback_url": "{NOWHERE}", "headers": {{"X-A": "\\ud800"}}, {LONG}}}'),
        ("/jobs", f'{{"callback_url": "{NOWHERE}", "payload": {{"\\ud800": 1, {LONG}}}}}'),
        ("/jobs", f'{{"callback_url": "{NOWHERE}", "payload": ["\\ud83d"], {LONG}}}'),
        ("/jobs", f'{{"\\udc00": 1, {LONG}}}'),
        ("/schedules", f'{{"cron_expression": "* * * * \\ud800", "callback_url": "{NOWHERE}", {LONG}}}'),
        ("/queues", f'{{"name": "q\\ud800", {LONG}}}'),
    ],
)  # fmt: skip
def test_lone_surrogates_in_json_strings_are_400(fuzzed, path, body):
    """orjson refuses "\\ud800" alone; the standard parser, used for bodies with long
    numbers, reads it, and SQLite could not store it."""
    _, client, log = fuzzed
    SENT["json"] += 1
    resp = client.request("POST", path, raw=body.encode())
    _answered(resp, log)
    assert resp.status == 400, resp


def test_a_paired_surrogate_escape_is_taken(fuzzed):
    _, client, log = fuzzed
    SENT["json"] += 1
    body = f'{{"callback_url": "{NOWHERE}", "delay_ms": 3600000, "payload": ["\\ud83d\\ude00", {LONG[5:]}]}}'
    resp = client.request("POST", "/jobs", raw=body.encode())
    _answered(resp, log)
    assert resp.expect(201)["payload"] == ["\U0001f600", 12345678901234567890]
