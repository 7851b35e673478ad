"""The dashboard's HTML, fetched from a real server: every page and fragment,
escaping of user data, the buttons' routes, static files and signing in."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import quote

import pytest
from support import ApiClient, MininqServer, Receiver, Reply, Response, wait_until

from mininq.dashboard import views

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HTMX_URL = "/static/htmx-2.0.11.min.js"
HX = {"HX-Request": "true", "Accept": "text/html"}
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}


def get_html(api: ApiClient, path: str, status: int = 200, headers: dict | None = None) -> str:
    resp = api.request("GET", path, headers={"Accept": "text/html", **(headers or {})})
    assert resp.status == status, f"GET {path}: HTTP {resp.status}: {resp.text[:1000]}"
    if status == 200:
        assert resp.headers["content-type"].startswith("text/html"), resp.headers
    return resp.text


def assert_no_raw_script(text: str, where: str) -> None:
    """No user-supplied markup survives: neither `<script>alert` nor any `<script` but ours."""
    assert "<script>alert" not in text.lower(), f"{where}: raw <script> in the HTML"
    own = re.findall(r"<script[^>]*>", text, flags=re.IGNORECASE)
    assert all(re.fullmatch(r'<script src="/static/[^"]+" defer>', tag) for tag in own), (
        f"{where}: unexpected script tags {own}"
    )


def version_of(fragment: str) -> str:
    found = re.findall(r'<input type="hidden" name="v" value="([0-9a-f]+)">', fragment)
    assert found, f"no version input in fragment: {fragment[-300:]}"
    return found[-1]


def hx_post(api: ApiClient, path: str) -> Response:
    return api.post(path, headers=HX)


@pytest.fixture
def hostile(api: ApiClient, receiver: Receiver, qname: str) -> dict:
    """A dead job and a schedule whose every user-set text holds <script>."""
    path = receiver.new_path()
    receiver.respond(path, Reply(500, f"{XSS} upstream exploded"))
    url = receiver.url(path) + "?next=" + XSS
    job = api.post(
        "/jobs",
        json={
            "callback_url": url,
            "queue_name": qname,
            "payload": {"html": XSS, XSS: [XSS]},
            "headers": {"X-Evil": XSS},
            "idempotency_key": f"{qname}-{XSS}",
            "max_retries": 0,
        },
    ).expect(201)
    dead = api.wait_job(job["id"], "dead")
    assert XSS in dead["last_error"], dead
    schedule = api.post(
        "/schedules",
        json={
            "cron_expression": "0 0 9 * * Mon-Fri",
            "timezone": "Europe/Prague",
            "callback_url": url,
            "queue_name": qname,
            "payload": {"html": XSS},
            "headers": {"X-Evil": XSS},
        },
    ).expect(201)
    return {"job": dead, "schedule": schedule, "url": url}


# -- escaping ---------------------------------------------------------------------------


def test_page_and_fragments_escape_user_data(api: ApiClient, hostile: dict, qname: str) -> None:
    job_id = hostile["job"]["id"]
    pages = {
        "page": f"/dashboard?queue={qname}&job={job_id}",
        "stats": "/dashboard/fragments/stats",
        "queues": "/dashboard/fragments/queues",
        "jobs": f"/dashboard/fragments/jobs?queue={qname}",
        "job": f"/dashboard/fragments/job/{job_id}",
        "job panel": f"/dashboard/fragments/job/{job_id}?panel=1",
        "schedules": "/dashboard/fragments/schedules",
    }
    texts = {name: get_html(api, path) for name, path in pages.items()}
    for name, text in texts.items():
        assert_no_raw_script(text, name)
    # Where user data shows, it shows as text.
    for name in ("page", "jobs", "job", "job panel", "schedules"):
        assert ESCAPED in texts[name], f"{name}: escaped <script> missing"
    detail = texts["job"]
    assert f"HTTP 500: {ESCAPED} upstream exploded" in detail  # last_error and attempt error
    assert detail.count(ESCAPED) >= 6, detail  # payload key+values, header, URL, errors, key
    assert "X-Evil" in detail
    assert qname in texts["queues"] and qname in texts["page"]
    assert "Europe/Prague" in texts["schedules"]
    assert "CET" in texts["schedules"] or "CEST" in texts["schedules"]


def test_reflected_parameters_are_escaped_or_dropped(api: ApiClient) -> None:
    """Nothing from the URL comes back as markup."""
    bad = quote(XSS, safe="")
    for path in (
        f"/dashboard?queue={bad}&status={bad}&after={bad}&trail={bad}&job={bad}",
        f"/dashboard/fragments/jobs?queue={bad}&status={bad}&after={bad}",
        f"/dashboard/fragments/job/{bad}",
        f"/dashboard/fragments/job/{bad}?panel=1",
    ):
        text = get_html(api, path)
        assert_no_raw_script(text, path)
    missing = get_html(api, f"/dashboard?job={bad}")  # a query value arrives decoded
    assert "Job not found" in missing and ESCAPED in missing


def test_queue_names_cannot_carry_markup(api: ApiClient, receiver: Receiver) -> None:
    """Queue names are limited to [A-Za-z0-9_.:-], so `<` never reaches the dashboard."""
    resp = api.post("/jobs", json={"callback_url": receiver.url("/x"), "queue_name": XSS})
    assert resp.status == 400, resp
    assert api.post("/queues", json={"name": XSS}).status == 400


# -- fragments and versions -------------------------------------------------------------


def test_unchanged_fragment_answers_204(api: ApiClient, hostile: dict, qname: str) -> None:
    for path in (
        "/dashboard/fragments/stats",
        "/dashboard/fragments/schedules",
        f"/dashboard/fragments/jobs?queue={qname}",
        f"/dashboard/fragments/job/{hostile['job']['id']}",
    ):
        first = get_html(api, path)
        sep = "&" if "?" in path else "?"
        again = api.get(path + f"{sep}v={version_of(first)}")
        assert again.status == 204, f"{path}: expected 204 for an unchanged version, got {again}"
        stale = api.get(path + f"{sep}v=0000000000000000")
        assert stale.status == 200, stale


def test_page_has_security_headers(api: ApiClient) -> None:
    resp = api.request("GET", "/dashboard")
    assert resp.status == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"
    assert HTMX_URL in resp.text


def test_jobs_keyset_paging(api: ApiClient, receiver: Receiver, qname: str) -> None:
    api.post("/queues", json={"name": qname, "paused": True}).expect(201)
    spec = {"callback_url": receiver.url(receiver.new_path()), "queue_name": qname}
    created = api.post("/jobs/batch", json={"jobs": [spec] * 57}).expect(201)["jobs"]
    ids = [j["id"] for j in reversed(created)]  # newest first, as the table shows them

    def rows(text: str) -> list[str]:
        return re.findall(r'<tr data-job-id="([0-9a-f-]+)">', text)

    def cursor(text: str, label: str) -> dict:
        found = re.search(r"hx-vals='([^']*)'[^>]*>" + label, text)
        assert found, f"no {label!r} button"
        return json.loads(html.unescape(found.group(1)))

    first = get_html(api, f"/dashboard/fragments/jobs?queue={qname}")
    assert rows(first) == ids[:50]
    assert "Newer" not in first
    older = cursor(first, "Older")
    assert older == {"after": ids[49], "trail": ""}
    second = get_html(api, f"/dashboard/fragments/jobs?queue={qname}&after={older['after']}&trail=")
    assert rows(second) == ids[50:]
    assert "Older" not in second and "Page 2" in second
    assert cursor(second, "← Newer") == {}  # back to the first page
    # The status filter applies with paging too.
    assert rows(get_html(api, f"/dashboard/fragments/jobs?queue={qname}&status=dead")) == []


# -- actions ----------------------------------------------------------------------------


def test_actions_need_the_htmx_header(api: ApiClient, qname: str, receiver: Receiver) -> None:
    api.post("/queues", json={"name": qname}).expect(201)
    resp = api.post(f"/dashboard/queues/{qname}/pause")
    assert resp.status == 403, resp
    assert api.get(f"/queues/{qname}").expect(200)["paused"] is False


def test_queue_actions(api: ApiClient, hostile: dict, qname: str) -> None:
    resp = hx_post(api, f"/dashboard/queues/{qname}/pause")
    assert resp.status == 200 and resp.headers.get("hx-trigger") == "mininq:changed", resp
    assert_no_raw_script(resp.text, "pause")
    assert api.get(f"/queues/{qname}").expect(200)["paused"] is True
    assert "Resume" in resp.text and 'id="queue-names" hx-swap-oob="true"' in resp.text

    resp = hx_post(api, f"/dashboard/queues/{qname}/retry-dead")
    assert resp.status == 200 and f"Queue {qname}: 1 dead job(s) back to pending." in resp.text
    assert api.get(f"/jobs/{hostile['job']['id']}").expect(200)["status"] == "pending"

    resp = hx_post(api, f"/dashboard/queues/{qname}/resume")
    assert resp.status == 200 and api.get(f"/queues/{qname}").expect(200)["paused"] is False
    api.wait_job(hostile["job"]["id"], "dead")

    resp = hx_post(api, f"/dashboard/queues/{qname}/purge")
    assert resp.status == 200, resp
    assert api.get(f"/queues/{qname}").expect(200)["dead"] == 1  # dead jobs are kept

    missing = hx_post(api, "/dashboard/queues/no-such-queue-x1/pause")
    assert missing.status == 200 and "not found" in missing.text


def test_job_actions(api: ApiClient, hostile: dict, receiver: Receiver, qname: str) -> None:
    job_id = hostile["job"]["id"]
    api.post(f"/queues/{qname}/pause").expect(200)
    resp = hx_post(api, f"/dashboard/jobs/{job_id}/retry")
    assert resp.status == 200 and "Back to pending" in resp.text, resp
    assert_no_raw_script(resp.text, "retry")
    assert api.get(f"/jobs/{job_id}").expect(200)["status"] == "pending"

    resp = hx_post(api, f"/dashboard/jobs/{job_id}/cancel")
    assert resp.status == 200 and "Cancelled." in resp.text, resp
    assert api.get(f"/jobs/{job_id}").expect(200)["status"] == "cancelled"

    again = hx_post(api, f"/dashboard/jobs/{job_id}/cancel")
    assert again.status == 200 and "only a pending job can be cancelled" in again.text


def test_schedule_actions(api: ApiClient, hostile: dict) -> None:
    sid = hostile["schedule"]["id"]
    resp = hx_post(api, f"/dashboard/schedules/{sid}/disable")
    assert resp.status == 200 and api.get(f"/schedules/{sid}").expect(200)["enabled"] is False
    assert_no_raw_script(resp.text, "disable")
    resp = hx_post(api, f"/dashboard/schedules/{sid}/enable")
    schedule = api.get(f"/schedules/{sid}").expect(200)
    assert resp.status == 200 and schedule["enabled"] is True and schedule["next_run_at"]
    resp = hx_post(api, f"/dashboard/schedules/{sid}/trigger")
    assert resp.status == 200 and "Created job" in resp.text, resp
    jobs = api.get("/jobs", schedule_id=sid).expect(200)
    assert len(jobs) == 1 and jobs[0]["schedule_id"] == sid


# -- static files -----------------------------------------------------------------------


def test_static_files_are_versioned_and_cached(api: ApiClient) -> None:
    page = get_html(api, "/dashboard")
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert HTMX_URL in urls and len(urls) == 3, urls
    for url in urls:
        resp = api.get(url)
        assert resp.status == 200, resp
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert resp.headers["content-type"].startswith(kind), resp.headers
        not_modified = api.request("GET", url, headers={"If-None-Match": resp.headers["etag"]})
        assert not_modified.status == 304
    htmx = api.get(HTMX_URL)
    assert b'version:"2.0.11"' in htmx.body and len(htmx.body) > 40_000
    assert api.get("/static/VENDORED.md").status == 404
    assert api.get("/static/htmx-1.0.0.min.js").status == 404


# -- signing in -------------------------------------------------------------------------

TOKEN = "dash-T0ken-7f3a9c"


@pytest.fixture
def secured(make_server) -> MininqServer:
    return make_server(f'[server]\napi_token = "{TOKEN}"\n')


def test_sign_in_flow(secured: MininqServer) -> None:
    with secured.client() as anon:
        page = get_html(anon, "/dashboard", status=401)
        assert 'action="/dashboard/login"' in page and 'type="password"' in page
        assert TOKEN not in page
        poll = anon.request("GET", "/dashboard/fragments/stats", headers=HX)
        assert poll.status == 401 and poll.headers.get("hx-refresh") == "true"
        assert anon.get(HTMX_URL).status == 200  # /static/ stays public
        assert anon.get("/jobs").status == 401  # the API still answers JSON 401
        assert anon.get("/jobs").json["status"] == 401

        wrong = anon.post("/dashboard/login", raw=b"token=not-it", headers=FORM)
        assert wrong.status == 401 and "not the API token" in wrong.text
        assert "set-cookie" not in wrong.headers

        ok = anon.post("/dashboard/login", raw=f"token={TOKEN}".encode(), headers=FORM)
        assert ok.status == 303 and ok.headers["location"] == "/dashboard", ok
        cookie = ok.headers["set-cookie"]
        name_value = cookie.split(";")[0]
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert name_value.startswith("mininq_session=") and TOKEN not in cookie
        assert {"httponly", "samesite=strict", "path=/"} <= attrs, cookie
        assert "secure" not in attrs, "Secure only over https"

        session = {"Cookie": name_value}
        page = get_html(anon, "/dashboard", headers=session)
        assert "Sign out" in page
        assert get_html(anon, "/dashboard/fragments/jobs", headers=session) is not None
        assert anon.request("GET", "/jobs", headers=session).status == 200

        out = anon.post("/dashboard/logout", headers={**session, "Content-Length": "0"})
        assert out.status == 303 and "max-age=0" in out.headers["set-cookie"].lower()

    with secured.client(token=TOKEN) as bearer:
        assert get_html(bearer, "/dashboard") is not None  # a bearer token works too

    wait_until(lambda: secured.log_text(), timeout=2)
    assert TOKEN not in secured.log_text(), "the token must never be logged"


def test_login_without_token_configured_just_redirects(api: ApiClient) -> None:
    resp = api.post("/dashboard/login", raw=b"token=anything", headers=FORM)
    assert resp.status == 303 and "set-cookie" not in resp.headers


# -- the pure view helpers --------------------------------------------------------------

ID = "01a21f62-e714-7088-a4a6-46db42e68{:03d}"


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "—"), (0, "0 ms"), (850, "850 ms"), (1250, "1.25 s"), (30_000, "30 s"),
     (300_000, "5 min"), (125_000, "2 min 5 s"), (3_600_000, "1 h"), (12_000_000, "3 h 20 min")],
)
def test_duration(ms: int | None, text: str) -> None:
    assert views.duration(ms) == text


def test_times_in_utc_and_in_a_schedules_zone() -> None:
    winter = 1795856400000  # 2026-11-28T09:00:00Z
    assert views.abs_time(winter) == "2026-11-28 09:00:00 UTC"
    assert views.iso(winter) == "2026-11-28T09:00:00.000Z"
    assert views.zone_time(winter, "Europe/Prague") == "2026-11-28 10:00:00 CET"
    summer = winter - 150 * 86_400_000
    assert views.zone_time(summer, "Europe/Prague").endswith(" 11:00:00 CEST")
    assert views.zone_time(winter, "Not/AZone") == "2026-11-28 09:00:00 UTC"


def test_pretty_json_and_headers() -> None:
    assert views.pretty_json('{"a":[1,2]}') == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert views.pretty_json("not json <b>") == "not json <b>"  # escaped by the template
    assert views.header_pairs('{"b":"2","a":"1"}') == [("a", "1"), ("b", "2")]
    assert views.header_pairs(None) == [] and views.header_pairs("[1]") == []
    assert views.short_id(ID.format(1)) == "42e68001"


def test_keyset_paging_walks_back_and_forth() -> None:
    first = views.JobFilter(queue="q", status="dead")
    assert first.page == 1 and first.cursor_params() == {}
    second = first.older(ID.format(950))
    assert second.page == 2 and second.cursor_params() == {"after": ID.format(950), "trail": ""}
    third = second.older(ID.format(900))
    assert third.page == 3 and third.trail == (ID.format(950),)
    assert third.newer() == second and second.newer() == first
    assert third.query(job=ID.format(1)) == {
        "queue": "q", "status": "dead", "after": ID.format(900), "trail": ID.format(950),
        "job": ID.format(1),
    }


def test_filters_drop_what_cannot_be_valid() -> None:
    def parse(**args: str) -> views.JobFilter:
        return views.parse_filter(args, lambda v: v.lower().startswith("01a2"), lambda n: "<" not in n)

    assert parse(queue=XSS, status=XSS, after=XSS) == views.JobFilter()
    assert parse(queue=" q ", status="pending") == views.JobFilter("q", "pending")
    assert parse(trail=ID.format(1)) == views.JobFilter()  # a trail without a cursor
    cursor = parse(after=ID.format(2).upper(), trail=f"x,{ID.format(3)}")
    assert cursor == views.JobFilter(after=ID.format(2), trail=(ID.format(3),))
