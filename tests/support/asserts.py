"""Assertions shared by the API tests."""

from __future__ import annotations

from .client import Response


def assert_error(resp: Response, status: int, field: str | None = None) -> str:
    """The SPEC §5 error shape with this status, its message naming `field` first."""
    body = resp.expect(status)
    assert isinstance(body, dict) and set(body) == {"error", "status"}, resp
    assert body["status"] == status and isinstance(body["error"], str), resp
    if field is not None:
        assert body["error"].startswith(f"{field}:"), f"error should name {field!r}: {resp}"
    return body["error"]
