"""Outcome of one delivery attempt (SPEC §2) and the words stored for it.

The exception cases are real failures of a real aiohttp client against real
local servers (refused port, server that hangs up, resets, stalls, speaks
broken HTTP or TLS with a self-signed certificate).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from mininq.engine.outcome import (
    classify,
    describe_exception,
    describe_http_error,
    truncate_result,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- classify ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "completed"),
        (201, "completed"),
        (204, "completed"),
        (299, "completed"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (410, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
        (499, "permanent"),
        (408, "transient"),
        (425, "transient"),
        (429, "transient"),
        (301, "transient"),
        (302, "transient"),
        (304, "transient"),
        (307, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (504, "transient"),
        (100, "transient"),
        (600, "transient"),
        (None, "transient"),
    ],
)
def test_classify(status: int | None, expected: str) -> None:
    assert classify(status) == expected


# --- describe_http_error ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, b"", "HTTP 503"),
        (503, b"  \n\t ", "HTTP 503"),
        (503, b"Service Unavailable", "HTTP 503: Service Unavailable"),
        (500, b"line one\n\n   line\ttwo\r\n", "HTTP 500: line one line two"),
        (404, "nenalezeno: žluťoučký kůň".encode(), "HTTP 404: nenalezeno: žluťoučký kůň"),
        (502, b"bad \xff\xfe gateway", "HTTP 502: bad \ufffd\ufffd gateway"),
        (500, b"nul\x00byte", "HTTP 500: nul byte"),
    ],
)
def test_describe_http_error(status: int, body: bytes, expected: str) -> None:
    assert describe_http_error(status, body) == expected


def test_describe_http_error_keeps_the_start_of_a_long_body() -> None:
    body = b"<html><body>" + b"x" * 100_000 + b"</body></html>"
    words = describe_http_error(500, body)
    assert words.startswith("HTTP 500: <html><body>xxx")
    assert words.endswith("…")
    assert len(words) <= len("HTTP 500: ") + 201


# --- describe_exception: real failures ---------------------------------------


async def _attempt(url: str, timeout_s: float = 3.0) -> BaseException:
    """One POST the way delivery makes it; returns what it raised."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(
                url,
                json={},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                await response.read()
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            return exc
    raise AssertionError(f"POST {url} unexpectedly succeeded")


async def _against(
    handler: Handler,
    scheme: str = "http",
    timeout_s: float = 3.0,
    server_ssl: ssl.SSLContext | None = None,
) -> BaseException:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    try:
        return await _attempt(f"{scheme}://127.0.0.1:{port}/hook", timeout_s)
    finally:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused() -> None:
    exc = asyncio.run(_attempt(f"http://127.0.0.1:{_closed_port()}/"))
    assert isinstance(exc, aiohttp.ClientConnectorError), repr(exc)
    assert describe_exception(exc, 30_000) == "connection refused"


def test_dns_failure() -> None:
    # `.invalid` never resolves (RFC 2606). In this sandbox getaddrinfo answers
    # EAI_NONAME (-2, "Name or service not known"); without any resolver it may
    # be EAI_AGAIN, which aiohttp 3.14 reports as the same ClientConnectorDNSError.
    exc = asyncio.run(_attempt("http://nonexistent.invalid/"))
    assert isinstance(exc, aiohttp.ClientConnectorDNSError), repr(exc)
    assert describe_exception(exc, 30_000) == "DNS lookup failed for host nonexistent.invalid", (
        repr(exc.os_error)
    )


def test_server_closes_without_response() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    exc = asyncio.run(_against(hang_up))
    assert isinstance(exc, aiohttp.ServerDisconnectedError), repr(exc)
    assert describe_exception(exc, 30_000) == "server closed the connection without a response"


def test_connection_reset() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: the close sends RST

    exc = asyncio.run(_against(reset))
    assert isinstance(exc, aiohttp.ClientOSError), repr(exc)
    assert describe_exception(exc, 30_000) == "connection reset by peer"


def test_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    exc = asyncio.run(_against(stall, timeout_s=0.2))
    assert isinstance(exc, asyncio.TimeoutError), repr(exc)
    assert describe_exception(exc, 200) == "timeout after 200 ms"


def test_timeout_subclasses_from_aiohttp() -> None:
    assert describe_exception(aiohttp.ServerTimeoutError("read"), 5000) == "timeout after 5000 ms"
    assert describe_exception(aiohttp.ConnectionTimeoutError(), 5000) == "timeout after 5000 ms"


def test_broken_status_line() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    exc = asyncio.run(_against(garbage))
    words = describe_exception(exc, 30_000)
    assert words.startswith("invalid HTTP response: Bad status line"), (repr(exc), words)
    assert "\n" not in words


def test_body_cut_short() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        writer.close()

    exc = asyncio.run(_against(short))
    assert isinstance(exc, aiohttp.ClientPayloadError), repr(exc)
    words = describe_exception(exc, 30_000)
    assert words.startswith("invalid response body:"), words


def test_tls_to_a_server_that_speaks_plain_http() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # the TLS ClientHello
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    exc = asyncio.run(_against(plain, scheme="https"))
    assert isinstance(exc, aiohttp.ClientSSLError), repr(exc)
    words = describe_exception(exc, 30_000)
    assert words.startswith("TLS error: "), words
    assert "wrong version number" in words, words


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_self_signed_certificate(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()

    exc = asyncio.run(_against(ok, scheme="https", server_ssl=context))
    assert isinstance(exc, aiohttp.ClientConnectorCertificateError), repr(exc)
    assert describe_exception(exc, 30_000) == (
        "TLS error: certificate verify failed: self-signed certificate"
    )


@pytest.mark.parametrize("url", ["http://", "http://exa mple.com:99999/", "ftp://example.com/"])
def test_invalid_url(url: str) -> None:
    exc = asyncio.run(_attempt(url))
    assert describe_exception(exc, 30_000) == "invalid URL", repr(exc)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad thing"), "ValueError: bad thing"),
        (RuntimeError(), "RuntimeError"),
        (ConnectionResetError(104, "Connection reset by peer"), "connection reset by peer"),
        (
            BrokenPipeError(32, "Broken pipe"),
            "connection closed by the server while sending the request",
        ),
        (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
        (RuntimeError("two\nlines"), "RuntimeError: two lines"),
    ],
)
def test_other_exceptions(exc: BaseException, expected: str) -> None:
    assert describe_exception(exc, 30_000) == expected


def test_long_messages_are_cut() -> None:
    words = describe_exception(RuntimeError("x" * 10_000), 30_000)
    assert len(words) <= 301 and words.endswith("…")


# --- truncate_result ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "max_bytes", "expected"),
    [
        (b"hello", 64, "hello"),
        (b"hello", 5, "hello"),
        (b"hello", 3, "hel"),
        (b"", 10, ""),
        (b"hello", 0, ""),
        ("aé".encode(), 2, "a"),  # é is 2 bytes: not split
        ("aé".encode(), 3, "aé"),
        ("€€".encode(), 5, "€"),  # € is 3 bytes
        ("😀".encode(), 3, ""),
        (b"ok\xffok", 10, "ok\ufffdok"),
        (b"ok\xff", 3, "ok"),  # the replacement character is 3 bytes itself
        (b"ok\xff", 5, "ok\ufffd"),
    ],
)
def test_truncate_result(body: bytes, max_bytes: int, expected: str) -> None:
    result = truncate_result(body, max_bytes)
    assert result == expected
    assert len(result.encode()) <= max(max_bytes, 0)


def test_truncate_result_matches_decoding_everything() -> None:
    """Decoding only a prefix gives the same text as decoding the whole body."""
    rng = random.Random(42)
    alphabet = ["a", "é", "€", "😀", "\n"]
    for _ in range(2000):
        parts = [
            rng.choice(alphabet).encode()
            if rng.random() < 0.8
            else bytes([rng.randrange(128, 256)])
            for _ in range(rng.randrange(0, 40))
        ]
        body = b"".join(parts)
        limit = rng.randrange(0, 60)
        whole = body.decode("utf-8", "replace").encode()[:limit].decode("utf-8", "ignore")
        assert truncate_result(body, limit) == whole, (body, limit)
