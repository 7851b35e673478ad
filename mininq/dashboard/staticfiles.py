"""GET /static/<name>: the dashboard's files, from memory, cacheable for a year.

Every served name carries its version (htmx's release, a content hash for
our own files), so a new build changes the URL and the cache never goes stale.
"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from mininq.dashboard.assets import STATIC

bp = Blueprint("dashboard_static")

CACHE_FOREVER = "public, max-age=31536000, immutable"


@bp.route("/static/<name:str>", methods=["GET", "HEAD"])
async def static_file(request: Request, name: str) -> HTTPResponse:
    file = STATIC.get(name)
    if file is None:
        return HTTPResponse(
            b"not found\n", status=404, content_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )
    headers = {
        "Cache-Control": CACHE_FOREVER,
        "ETag": file.etag,
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == file.etag:
        return HTTPResponse(status=304, headers=headers)
    body = b"" if request.method == "HEAD" else file.body
    return HTTPResponse(body, headers=headers, content_type=file.content_type)
