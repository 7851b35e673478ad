"""Who may call: the bearer-token check for every route but /health, /static/ and
the dashboard sign-in, and the same-origin rule for requests that change things.

The dashboard's session cookie holds an HMAC of the token, not the token:
it stops working when the token changes, and the token never travels in it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from sanic import Request

SESSION_COOKIE = "mininq_session"
PUBLIC_PATHS = ("/health", "/dashboard/login")
PUBLIC_PREFIXES = ("/static/",)


def session_value(token: str) -> str:
    return hmac.new(
        token.encode("utf-8", "surrogatepass"), b"mininq dashboard session", hashlib.sha256
    ).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two strings of any content.

    `hmac.compare_digest` raises TypeError on a str holding non-ASCII characters,
    and a header or cookie may hold anything a client sends (Sanic decodes
    invalid UTF-8 to lone surrogates), so compare their UTF-8 bytes;
    `surrogatepass` encodes every str, surrogates included.
    """
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_authorized(request: Request, token: str) -> bool:
    if not token:
        return True
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer " and same_secret(header[7:].strip(), token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE)
    return bool(cookie) and same_secret(cookie, session_value(token))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(request: Request) -> bool:
    """False for a browser request sent from another site.

    Browsers add `Origin` to cross-site POST/PUT/DELETE; a page elsewhere could
    otherwise make a visitor's browser create jobs or pause queues on a mininq
    listening on localhost. Clients that send no Origin (curl, SDKs) pass.
    """
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:  # "http://[::1": not an origin this server could have served
        return False
    return netloc.lower() == (request.headers.get("host") or "").lower()
