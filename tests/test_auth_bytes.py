"""The token and origin checks against whatever bytes a client sends: non-ASCII,
invalid UTF-8 and Latin-1 in the Authorization header and the session cookie
answer 401, and a malformed Origin 403, never 500.

The requests are written byte by byte to a socket, since an HTTP library would
refuse or re-encode such headers before they reach the server.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from support import MininqServer

from mininq.api.auth import SESSION_COOKIE, session_value

TOKEN = "tok-ÄSCII-not-ﬁ"  # a token with non-ASCII characters works too


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    config = f'[server]\napi_token = "{TOKEN}"\n'
    with MininqServer(tmp_path_factory.mktemp("auth-bytes"), config_toml=config) as srv:
        yield srv


def raw_request(server: MininqServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request written out in bytes; return the status and the whole answer."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    return int(status_line.split()[1]), answer


def get_jobs(server: MininqServer, header: bytes) -> tuple[int, bytes]:
    return raw_request(server, b"GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header)


BAD_AUTHORIZATIONS = [
    b"Bearer caf\xe9",  # Latin-1: not valid UTF-8
    b"Bearer \xff\xfe\xfd",
    "Bearer café".encode(),  # valid UTF-8, non-ASCII
    "Bearer 🔑".encode(),
    b"Bearer " + TOKEN.encode() + b"\xe9",
    b"Bearer " + TOKEN.encode("utf-8")[:-1],  # the token cut inside its last character
    b"Bearer " + TOKEN.encode("latin-1", "replace"),
    b"bEaReR \xc3\x28",  # an invalid two-byte sequence
]


@pytest.mark.parametrize("value", BAD_AUTHORIZATIONS, ids=repr)
def test_non_ascii_bearer_values_are_refused_with_401(token_server, value):
    status, answer = get_jobs(token_server, b"Authorization: " + value)
    assert status == 401, answer[:500]
    assert b"token" in answer


BAD_COOKIES = [
    b"\xff\xfe",
    "café".encode(),
    "ünïcödé-🍪".encode(),
    b'"\\377\\376"',  # a quoted cookie with octal escapes, which Sanic unquotes
    session_value(TOKEN).encode() + b"\xe9",
    session_value(TOKEN).encode()[:-1] + "é".encode(),
]


@pytest.mark.parametrize("value", BAD_COOKIES, ids=repr)
def test_non_ascii_session_cookies_are_refused_with_401(token_server, value):
    status, answer = get_jobs(token_server, b"Cookie: " + SESSION_COOKIE.encode() + b"=" + value)
    assert status == 401, answer[:500]


def test_the_right_token_and_cookie_still_pass(token_server):
    status, answer = get_jobs(token_server, b"Authorization: Bearer " + TOKEN.encode())
    assert status == 200, answer[:500]
    cookie = f"{SESSION_COOKIE}={session_value(TOKEN)}".encode()
    status, answer = get_jobs(token_server, b"Cookie: " + cookie)
    assert status == 200, answer[:500]


@pytest.mark.parametrize(
    "form",
    [
        b"token=" + quote("café").encode(),
        b"token=%FF%FE",  # percent-encoded invalid UTF-8
        b"token=" + TOKEN.encode() + b"\xe9",  # raw invalid UTF-8 in the body
        b"token=" + quote(TOKEN + "x").encode(),
    ],
    ids=repr,
)
def test_dashboard_sign_in_with_a_wrong_non_ascii_token_is_refused(token_server, form):
    head = (
        b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode()
    )
    status, answer = raw_request(token_server, head, form)
    assert status in (400, 401), answer[:500]
    assert SESSION_COOKIE.encode() not in answer


def test_dashboard_sign_in_with_the_non_ascii_token_sets_the_cookie(token_server):
    form = b"token=" + quote(TOKEN).encode()
    head = (
        b"POST /dashboard/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(form)).encode()
    )
    status, answer = raw_request(token_server, head, form)
    assert status == 303, answer[:500]
    assert f"{SESSION_COOKIE}={session_value(TOKEN)}".encode() in answer


@pytest.mark.parametrize(
    "origin",
    [b"http://[::1", b"http://[", "http://ünï.example".encode(), b"http://\xff\xfe", b"\xc3("],
    ids=repr,
)
def test_a_malformed_or_non_ascii_origin_is_refused_with_403(token_server, origin):
    body = b'{"callback_url": "http://127.0.0.1:9/x"}'
    head = (
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nOrigin: " + origin + b"\r\n"
        b"Content-Length: " + str(len(body)).encode()
    )
    status, answer = raw_request(token_server, head, body)
    assert status == 403, answer[:500]
    assert b"origin" in answer
