"""Signing in to the dashboard when `server.api_token` is set.

The browser asks for the token once; `POST /dashboard/login` checks it and
sets the session cookie (an HMAC of the token, see mininq.api.auth). The
token travels only in that POST body: never in a URL, a cookie or a log.
"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request, Sanic

from mininq.api.auth import SESSION_COOKIE, same_secret, session_value
from mininq.dashboard.render import html, render

bp = Blueprint("dashboard_session")

SESSION_MAX_AGE_S = 30 * 24 * 3600


def sign_in_page(request: Request, error: str | None = None) -> HTTPResponse:
    """401 with the sign-in form. A poll from an open page whose session ended
    gets `HX-Refresh`, so htmx reloads the page and the user sees the form."""
    headers = {"HX-Refresh": "true"} if request.headers.get("hx-request") == "true" else {}
    return html(render("signin.html", error=error), 401, headers)


def _redirect_home() -> HTTPResponse:
    return HTTPResponse(status=303, headers={"Location": "/dashboard", "Cache-Control": "no-store"})


def _is_https(request: Request) -> bool:
    return request.scheme == "https"


@bp.before_server_start
async def install_sign_in_page(app: Sanic) -> None:
    app.ctx.sign_in_page = sign_in_page


@bp.post("/dashboard/login")
async def login(request: Request) -> HTTPResponse:
    token = request.app.ctx.config.server.api_token
    if not token:
        return _redirect_home()
    given = (request.form.get("token") or "") if request.form else ""
    if not same_secret(given.strip(), token):
        return sign_in_page(request, "That is not the API token.")
    response = _redirect_home()
    response.add_cookie(
        SESSION_COOKIE, session_value(token), path="/", httponly=True, samesite="Strict",
        secure=_is_https(request), max_age=SESSION_MAX_AGE_S,
    )
    return response


@bp.get("/dashboard/login")
async def login_page(request: Request) -> HTTPResponse:
    """A reload or bookmark of the sign-in URL: the dashboard asks again if it must."""
    return _redirect_home()


@bp.post("/dashboard/logout")
async def logout(request: Request) -> HTTPResponse:
    response = _redirect_home()
    # Not delete_cookie(): it marks the cookie Secure, which a browser ignores over http.
    response.add_cookie(
        SESSION_COOKIE, "", path="/", httponly=True, samesite="Strict",
        secure=_is_https(request), max_age=0,
    )
    return response
