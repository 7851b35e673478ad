"""The live dashboard: server-rendered HTML that htmx keeps up to date.

`dashboard` is the blueprint group mininq.http_process registers: the page and its
polled fragments (pages), the buttons' POST routes (actions), signing in
(session) and the vendored htmx plus our CSS and JS (staticfiles).
"""

from sanic import Blueprint

from mininq.dashboard import actions, pages, session, staticfiles

dashboard = Blueprint.group(pages.bp, actions.bp, session.bp, staticfiles.bp)

__all__ = ["dashboard"]
