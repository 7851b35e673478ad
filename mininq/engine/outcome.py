"""What one delivery attempt means (SPEC §2), and the words stored for it.

Pure: takes a status code, a body or an exception that the delivery code
already has, and returns a classification or a message a person can read in
`last_error`.
"""

from __future__ import annotations

import asyncio
import errno
import ssl

import aiohttp

COMPLETED = "completed"
PERMANENT = "permanent"
TRANSIENT = "transient"

# 4xx answers that mean "not now" rather than "never" (the destination's
# control, engine/adaptive.py, reads them the same way).
RETRYABLE_4XX = frozenset({408, 425, 429})
_BODY_PREVIEW_CHARS = 200
_MESSAGE_MAX_CHARS = 300


def classify(status_code: int | None) -> str:
    """`completed` for 2xx, `permanent` for 4xx but 408/425/429, else `transient`.

    The status alone decides. No response at all (None: timeout, refused, DNS,
    TLS...) is transient, whatever the error was.
    """
    if status_code is None:
        return TRANSIENT
    if 200 <= status_code <= 299:
        return COMPLETED
    if 400 <= status_code <= 499 and status_code not in RETRYABLE_4XX:
        return PERMANENT
    return TRANSIENT


def _one_line(text: str, limit: int) -> str:
    """Whitespace and control characters collapsed to single spaces, cut to `limit`."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    collapsed = " ".join(printable.split())
    if len(collapsed) > limit:
        return collapsed[:limit].rstrip() + "…"
    return collapsed


def describe_http_error(status_code: int, body: bytes) -> str:
    """`HTTP 503: <start of body>`, or `HTTP 503` when the body is empty."""
    preview = _one_line(
        body[: _BODY_PREVIEW_CHARS * 4].decode("utf-8", "replace"), _BODY_PREVIEW_CHARS
    )
    return f"HTTP {status_code}: {preview}" if preview else f"HTTP {status_code}"


def _os_error_words(err: BaseException | None) -> str | None:
    no = getattr(err, "errno", None)
    if isinstance(err, ConnectionRefusedError) or no == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(err, ConnectionResetError) or no == errno.ECONNRESET:
        return "connection reset by peer"
    if isinstance(err, BrokenPipeError) or no == errno.EPIPE:
        return "connection closed by the server while sending the request"
    if no == errno.ENETUNREACH:
        return "network unreachable"
    if no == errno.EHOSTUNREACH:
        return "host unreachable"
    return None


def _tls_words(err: BaseException) -> str:
    reason = getattr(err, "verify_message", None) or getattr(err, "reason", None)
    if isinstance(err, ssl.SSLCertVerificationError) and reason:
        return f"certificate verify failed: {reason}"
    if reason:
        return str(reason).replace("_", " ").lower()
    return str(err) or type(err).__name__


def describe_exception(exc: BaseException, timeout_ms: int) -> str:
    """Plain words for why an attempt got no usable response.

    Order matters: TimeoutError is an OSError, the DNS and TLS errors are
    ClientConnectorErrors, and a connect error wraps the OSError that says why.
    """
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout after {timeout_ms} ms"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed for host {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _one_line(f"TLS error: {_tls_words(exc.certificate_error)}", _MESSAGE_MAX_CHARS)
    if isinstance(exc, aiohttp.ClientSSLError):
        return _one_line(f"TLS error: {_tls_words(exc.os_error)}", _MESSAGE_MAX_CHARS)
    if isinstance(exc, ssl.SSLError):
        return _one_line(f"TLS error: {_tls_words(exc)}", _MESSAGE_MAX_CHARS)
    if isinstance(exc, aiohttp.ClientConnectorError):
        words = _os_error_words(exc.os_error)
        if words:
            return words
        return _one_line(
            f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}",
            _MESSAGE_MAX_CHARS,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _one_line(f"invalid response body: {exc}", _MESSAGE_MAX_CHARS)
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised without a response: aiohttp could not parse what the server sent.
        return _one_line(f"invalid HTTP response: {exc.message}", _MESSAGE_MAX_CHARS)
    if isinstance(exc, OSError):
        words = _os_error_words(exc)
        if words:
            return words
    message = str(exc)
    name = type(exc).__name__
    return _one_line(f"{name}: {message}" if message else name, _MESSAGE_MAX_CHARS)


def truncate_result(body: bytes, max_bytes: int) -> str:
    """The stored `result`: UTF-8 text of at most `max_bytes` bytes.

    Invalid bytes become U+FFFD; the cut never splits a character.
    """
    if max_bytes <= 0:
        return ""
    # Each input byte decodes to at least one output byte, so a prefix a few
    # bytes longer than the limit is enough and a huge body is never decoded.
    text = body[: max_bytes + 8].decode("utf-8", "replace")
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")
