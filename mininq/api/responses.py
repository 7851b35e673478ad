"""JSON responses and the error shape `{"error": ..., "status": ...}` for every failure."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from sanic import HTTPResponse, Request
from sanic.exceptions import SanicException

from mininq.api.validate import ValidationError
from mininq.faults import FAULTS
from mininq.logs import get_logger
from mininq.store import Conflict, NotFound, Unavailable

log = get_logger("mininq.api")
_LONG_NUMBER = re.compile(rb"\d{19}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_response(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, message: str) -> HTTPResponse:
    # A message may quote what the client sent, lone surrogates included (Sanic
    # decodes undecodable header bytes to them, the standard JSON parser reads
    # "\ud800" as one); orjson refuses those, so they go out backslash-escaped.
    safe = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return json_response({"error": safe, "status": status}, status)


def parse_body(request: Request) -> Any:
    """The request's JSON body; a ValidationError for anything that isn't JSON."""
    if not request.body:
        raise ValidationError("body", "a JSON body is required")
    try:
        if _LONG_NUMBER.search(request.body):
            # orjson reads integers beyond 64 bits as floats, silently changing
            # them; the standard parser keeps them exact so validation can refuse.
            value = json.loads(request.body, parse_constant=_no_constant)
            if _SURROGATE_ESCAPE.search(request.body):
                # It also takes a lone surrogate ("\ud800"), which orjson refuses
                # and SQLite can't store: refuse it here the same way.
                json.dumps(value, ensure_ascii=False).encode()
            return value
        return orjson.loads(request.body)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ValidationError("body", f"malformed JSON ({exc})") from None
    except RecursionError:  # the standard parser's limit on nesting
        raise ValidationError("body", "malformed JSON (nested too deeply)") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def query(request: Request) -> dict[str, str]:
    """Query parameters, first value of each.

    Blank values are kept so that `?queue=` is refused, not silently read as
    "no filter" (which would answer with every queue's jobs)."""
    return {k: v[0] for k, v in request.get_args(keep_blank_values=True).items()}


async def handle_error(request: Request, exc: Exception) -> HTTPResponse:
    """Every exception becomes a JSON error; unexpected ones are logged, never shown."""
    if isinstance(exc, ValidationError):
        return error_response(400, str(exc))
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, str(exc))
    if isinstance(exc, Unavailable):
        # The machine's condition, not a bug: the cause in the answer, and in
        # the log once a minute rather than a traceback per request.
        FAULTS.report(exc, f"{request.method} {request.path}")
        return error_response(exc.status, str(exc))
    if isinstance(exc, SanicException):
        status = getattr(exc, "status_code", 500) or 500
        if status == 413:
            limit = request.app.config.REQUEST_MAX_SIZE
            return error_response(413, f"body: larger than the limit of {limit} bytes")
        if status == 404:
            return error_response(404, f"no route {request.method} {request.path}")
        if status == 405:
            return error_response(405, f"method {request.method} not allowed on {request.path}")
        if status < 500:
            return error_response(status, str(exc) or "bad request")
    log.exception("internal error on %s %s", request.method, request.path)
    return error_response(500, "internal error (see the server log)")
