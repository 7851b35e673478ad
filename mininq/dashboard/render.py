"""HTML responses: whole pages, and fragments that htmx polls.

A polled fragment carries a hidden input `v`, a hash of its HTML, and the
poll sends it back. When nothing changed the answer is 204, which htmx does
not swap: the user's scroll position inside the fragment, a text selection
and an open confirmation survive the poll.
"""

from __future__ import annotations

import hashlib
from typing import Any

from markupsafe import Markup
from sanic import HTTPResponse, Request

from mininq import __version__
from mininq.dashboard import views
from mininq.dashboard.assets import TEMPLATES

# No inline script or style, nothing from elsewhere: a payload that slipped
# past escaping still could not run. htmx's inline indicator style is turned
# off in its config (see page.html).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CHANGED = "mininq:changed"  # event name: the other fragments poll at once on it

TEMPLATES.filters.update(
    iso=views.iso,
    abstime=views.abs_time,
    zonetime=views.zone_time,
    duration=views.duration,
    shortid=views.short_id,
    prettyjson=views.pretty_json,
)
TEMPLATES.globals["version"] = __version__


_DEFAULTS: dict[str, Any] = {"oob": False, "flash": None}


def render(name: str, **context: Any) -> str:
    return TEMPLATES.get_template(name).render({**_DEFAULTS, **context})


def html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(
        body, status=status, headers={**HTML_HEADERS, **(headers or {})},
        content_type="text/html; charset=utf-8",
    )


def versioned(body: str, tag: str | None = None) -> tuple[str, str]:
    """(HTML with its hidden version input appended, the version: a hash of `body`
    unless given)."""
    tag = tag or hashlib.blake2b(body.encode(), digest_size=8).hexdigest()
    # `tag` is hex: nothing to escape. (Not `body + Markup(...)`: that would escape `body`.)
    return f'{body}<input type="hidden" name="v" value="{tag}">', tag


def fragment(
    request: Request, name: str, *, changed: bool = False, wrap: str | None = None,
    **context: Any,
) -> HTTPResponse:
    """A polled fragment, or 204 when the poller already shows this version.

    `changed` tells the page that data changed (after an action), so every
    other fragment refreshes now rather than at its next poll. `wrap` names a
    template that gets the fragment as `inner` (the element that polls it).
    """
    body, tag = versioned(render(name, **context))
    if not changed and wrap is None and request.args.get("v") == tag:
        return HTTPResponse(status=204, headers={"Cache-Control": "no-store"})
    if wrap is not None:
        body = render(wrap, inner=Markup(body), **context)
    return html(body, headers={"HX-Trigger": CHANGED} if changed else None)
