"""GET routes: the dashboard page and the fragments its parts poll."""

from __future__ import annotations

from markupsafe import Markup
from sanic import Blueprint, HTTPResponse, Request

from mininq.api.auth import SESSION_COOKIE
from mininq.api.responses import query
from mininq.clock import now_ms
from mininq.dashboard import data, views
from mininq.dashboard.assets import HTMX_VERSION
from mininq.dashboard.render import fragment, html, render, versioned

bp = Blueprint("dashboard_pages")


def _base_url(request: Request) -> str:
    return f"{request.scheme}://{request.host}"


def _part(name: str, oob: bool = False, **context) -> Markup:
    """A fragment rendered into the page, with the version its first poll sends back.

    For fragments whose polls also carry out-of-band parts (`oob`), the page
    holds those parts elsewhere, but the version is that of the polled form,
    so the first poll finds nothing new.
    """
    body = render(name, **context)
    tag = versioned(render(name, oob=True, **context))[1] if oob else None
    return Markup(versioned(body, tag)[0])


@bp.get("/dashboard", strict_slashes=False)
async def page(request: Request) -> HTTPResponse:
    app = request.app
    args = query(request)
    flt = data.job_filter(args)
    queues = await data.queues(app)
    stats = await data.stats(app)
    chart = await data.chart(app, args)
    detail = ""
    if args.get("job"):
        job = await data.job(app, args["job"])
        inner = _part("_job.html", **job)
        detail = Markup(render("_job_panel.html", inner=inner, **job)) if job["job"] else inner
    body = render(
        "page.html",
        now=now_ms(),
        filter=flt,
        statuses=views.STATUSES,
        htmx_version=HTMX_VERSION,
        signed_in=bool(app.ctx.config.server.api_token) and SESSION_COOKIE in request.cookies,
        stats_html=_part("_stats.html", oob=True, **stats),
        engine_up=stats["engine_up"],
        queues_html=_part("_queues.html", oob=True, **queues),
        chart_html=_part("_chart.html", **chart),
        **{k: chart[k] for k in ("chart_range", "chart_queue", "ranges")},
        jobs_html=_part("_jobs.html", base_url=_base_url(request), **await data.jobs(app, flt)),
        detail_html=detail,
        schedules_html=_part("_schedules.html", **await data.schedules(app)),
        nodes_html=_part("_nodes.html", **await data.nodes(app)),
        destinations_html=_part("_destinations.html", **await data.destinations(app)),
        **queues,
    )
    return html(body)


@bp.get("/dashboard/fragments/stats")
async def stats(request: Request) -> HTTPResponse:
    return fragment(request, "_stats.html", oob=True, **await data.stats(request.app))


@bp.get("/dashboard/fragments/nodes")
async def nodes(request: Request) -> HTTPResponse:
    return fragment(request, "_nodes.html", **await data.nodes(request.app))


@bp.get("/dashboard/fragments/destinations")
async def destinations(request: Request) -> HTTPResponse:
    return fragment(request, "_destinations.html", **await data.destinations(request.app))


@bp.get("/dashboard/fragments/queues")
async def queues(request: Request) -> HTTPResponse:
    return fragment(request, "_queues.html", oob=True, **await data.queues(request.app))


@bp.get("/dashboard/fragments/chart")
async def chart(request: Request) -> HTTPResponse:
    return fragment(request, "_chart.html", **await data.chart(request.app, query(request)))


@bp.get("/dashboard/fragments/jobs")
async def jobs(request: Request) -> HTTPResponse:
    flt = data.job_filter(query(request))
    context = await data.jobs(request.app, flt)
    return fragment(request, "_jobs.html", base_url=_base_url(request), **context)


@bp.get("/dashboard/fragments/job/<job_id:str>")
async def job(request: Request, job_id: str) -> HTTPResponse:
    """The job's detail; with `panel=1` wrapped in the element that keeps polling it."""
    context = await data.job(request.app, job_id)
    wrap = "_job_panel.html" if request.args.get("panel") and context["job"] else None
    return fragment(request, "_job.html", wrap=wrap, **context)


@bp.get("/dashboard/fragments/schedules")
async def schedules(request: Request) -> HTTPResponse:
    return fragment(request, "_schedules.html", **await data.schedules(request.app))
