"""Bearer-token check for every route but /health, /static/ and the dashboard sign-in.

The dashboard's session cookie holds an HMAC of the token, not the token:
it stops working when the token changes, and the token never travels in it.
"""

from __future__ import annotations

import hashlib
import hmac

from sanic import Request

SESSION_COOKIE = "mininq_session"
PUBLIC_PATHS = ("/health", "/dashboard/login")
PUBLIC_PREFIXES = ("/static/",)


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"mininq dashboard session", hashlib.sha256).hexdigest()


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_authorized(request: Request, token: str) -> bool:
    if not token:
        return True
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip(), token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return bool(cookie) and hmac.compare_digest(cookie, session_value(token))
