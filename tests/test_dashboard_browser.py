"""The dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright for Python): live updates, clicks, and no request leaving localhost.

Without Chromium or Playwright these tests skip, except under CI=true, where
they fail: CI installs both.

With MININQ_SCREENSHOTS=1, `test_screenshots` also writes the README's
screenshots to docs/screenshots/ (1280 and 390 px wide, light and dark):
    MININQ_SCREENSHOTS=1 python -m pytest tests/test_dashboard_browser.py -k screenshots
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import ApiClient, MininqServer, Receiver, Reply, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1"}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SERVER_CONFIG = """\
[defaults]
base_delay_ms = 100
max_delay_ms = 1000
timeout_ms = 5000
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    """A server of its own, so the tables hold only what these tests make."""
    with MininqServer(
        tmp_path_factory.mktemp("dashboard-browser"), config_toml=SERVER_CONFIG
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def dash_api(dash: MininqServer) -> Iterator[ApiClient]:
    with dash.client() as client:
        yield client


class Session:
    """One browser page, and every URL it asked for (other hosts are recorded and blocked)."""

    def __init__(self, browser, base_url: str, width: int = 1280, scheme: str = "light") -> None:
        height = 900 if width > 500 else 844
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme,
            base_url=base_url,
        )
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda req: self.requests.append(req.url))
        self.context.route("**/*", self._only_local)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)

    def _console(self, msg) -> None:
        # htmx logs its own aborted requests (hx-sync="...:replace", a reload) as
        # errors; anything else (a CSP refusal, a script error) counts.
        if msg.type == "error" and not msg.text.startswith("htmx:"):
            self.errors.append(msg.text)

    @staticmethod
    def _only_local(route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort()

    def open(self, path: str = "/dashboard") -> None:
        self.page.goto(path)
        self.page.wait_for_function("() => window.htmx !== undefined")
        self.page.evaluate("() => { window.__sameDocument = true }")

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("() => window.__sameDocument === true"), "the page reloaded"

    def assert_all_local(self) -> None:
        assert self.requests, "the page made no request at all"
        foreign = [u for u in self.requests if urlsplit(u).hostname not in LOCAL_HOSTS]
        assert not foreign, f"requests left 127.0.0.1: {foreign}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser, dash: MininqServer) -> Iterator[Session]:
    s = Session(browser, dash.url)
    yield s
    s.close()
    assert not s.errors, f"errors in the page: {s.errors}"


def settled_scroll(page, before: float) -> float | None:
    """scrollY once a (smooth) scroll away from `before` has come to rest, else None."""
    first = page.evaluate("scrollY")
    page.wait_for_timeout(250)
    last = page.evaluate("scrollY")
    return last if last == first and last != before else None


def unique_queue() -> str:
    return f"b-{uuid.uuid4().hex[:10]}"


# -- live updates --------------------------------------------------------------------------


def test_new_job_appears_without_reload(session: Session, dash_api: ApiClient,
                                        receiver: Receiver) -> None:
    page = session.page
    session.open()
    path = receiver.new_path()
    started = time.monotonic()
    job = dash_api.post(
        "/jobs", json={"callback_url": receiver.url(path), "queue_name": unique_queue()}
    ).expect(201)
    row = page.locator(f'tr[data-job-id="{job["id"]}"]')
    row.wait_for(timeout=5000)
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"the new job took {elapsed:.2f} s to appear (limit 3 s)"
    session.assert_not_reloaded()
    receiver.wait_for(path, 1)
    row.locator(".badge.st-completed").wait_for(timeout=5000)
    session.assert_all_local()
    print(f"new job visible after {elapsed:.2f} s")


def test_filters_open_job_and_scroll_survive_polling(session: Session, dash_api: ApiClient,
                                                     receiver: Receiver) -> None:
    page = session.page
    page.set_viewport_size({"width": 1280, "height": 500})
    queue = unique_queue()
    dash_api.post("/queues", json={"name": queue, "paused": True}).expect(201)
    spec = {"callback_url": receiver.url(receiver.new_path()), "queue_name": queue}
    jobs = dash_api.post("/jobs/batch", json={"jobs": [spec] * 30}).expect(201)["jobs"]
    session.open()
    page.fill("#queue-filter", queue)
    page.press("#queue-filter", "Enter")
    wait_until(lambda: page.locator("table.jobs tbody tr").count() == 30, timeout=5,
               message="the queue filter did not apply")
    target = jobs[10]["id"]
    page.locator(f'tr[data-job-id="{target}"] a.stretch').click()
    page.locator("#job-panel").wait_for()
    before = page.evaluate("scrollY")
    page.mouse.wheel(0, 400)
    scroll = wait_until(lambda: settled_scroll(page, before), timeout=3,
                        message="the page did not scroll")
    # A change the polls must pick up, then at least two polls of every part.
    dash_api.delete(f"/jobs/{jobs[0]['id']}").expect(200)
    page.locator(f'tr[data-job-id="{jobs[0]["id"]}"] .badge.st-cancelled').wait_for(timeout=4000)
    page.wait_for_timeout(4500)
    assert page.input_value("#queue-filter") == queue
    assert page.locator("table.jobs tbody tr").count() == 30
    assert page.locator("#job-panel").get_attribute("data-job-id") == target
    assert page.locator("tr.is-open").get_attribute("data-job-id") == target
    assert page.evaluate("scrollY") == scroll, "a poll moved the scroll position"
    assert f"queue={queue}" in page.url and f"job={target}" in page.url
    session.assert_not_reloaded()
    page.reload()  # the address bar kept the state
    page.locator("#job-panel").wait_for()
    assert page.input_value("#queue-filter") == queue
    session.assert_all_local()


# -- clicks ----------------------------------------------------------------------------------


def test_pause_and_resume_a_queue_by_clicking(session: Session, dash_api: ApiClient) -> None:
    page = session.page
    queue = unique_queue()
    dash_api.post("/queues", json={"name": queue}).expect(201)
    session.open()
    row = page.locator(f'tr[data-queue="{queue}"]')
    row.locator("button", has_text="Pause").click()
    row.locator(".badge.st-paused").wait_for(timeout=3000)
    assert dash_api.get(f"/queues/{queue}").expect(200)["paused"] is True
    row.locator("button", has_text="Resume").click()
    row.locator("button", has_text="Pause").wait_for(timeout=3000)
    assert row.locator(".badge.st-paused").count() == 0
    assert dash_api.get(f"/queues/{queue}").expect(200)["paused"] is False
    session.assert_not_reloaded()
    session.assert_all_local()


def test_open_a_dead_job_and_retry_it(session: Session, dash_api: ApiClient,
                                      receiver: Receiver) -> None:
    page = session.page
    path = receiver.new_path()
    receiver.respond(path, Reply(500, "boom: the database is down"), Reply(200, "ok"))
    job = dash_api.post(
        "/jobs",
        json={"callback_url": receiver.url(path), "queue_name": unique_queue(), "max_retries": 0},
    ).expect(201)
    dash_api.wait_job(job["id"], "dead")
    session.open()
    page.select_option("select[name=status]", "dead")
    page.locator(f'tr[data-job-id="{job["id"]}"] a.stretch').click()
    panel = page.locator("#job-panel")
    panel.locator(".badge.st-dead").wait_for(timeout=3000)
    assert "HTTP 500: boom: the database is down" in panel.inner_text()
    panel.locator("button", has_text="Retry").click()
    panel.locator(".badge.st-completed").wait_for(timeout=8000)
    receiver.wait_for(path, 2)
    assert dash_api.get(f"/jobs/{job['id']}").expect(200)["status"] == "completed"
    assert panel.locator("table.attempts tbody").count() == 2  # the failed attempt stays listed
    session.assert_not_reloaded()
    session.assert_all_local()


def test_open_breaker_shows_and_resets_by_clicking(session: Session,
                                                   dash_api: ApiClient) -> None:
    """The Destinations panel shows a breaker that opened, escapes the
    receiver's words in the last error, and its Reset button closes it."""
    page = session.page
    queue = unique_queue()
    with Receiver() as own:
        path = own.new_path()
        own.respond(path, Reply(500, "<b>down</b>"))
        dash_api.post("/queues", json={"name": queue, "max_concurrency": 1}).expect(201)
        spec = {"callback_url": own.url(path), "queue_name": queue, "max_retries": 0}
        dash_api.post("/jobs/batch", json={"jobs": [spec] * 12}).expect(201)
        session.open()
        row = page.locator(f'tr[data-destination="{own.base_url}"]')
        row.locator(".badge.st-dead", has_text="open").wait_for(timeout=8000)
        assert "HTTP 500: <b>down</b>" in row.inner_text(), "the error is shown as text"
        assert row.locator("b").count() == 0, "the receiver's HTML was not escaped"
        assert row.locator('td[data-label="Pending"]').inner_text() == "2"
        own.respond(path, Reply(200, "ok"))
        row.locator("button", has_text="Reset").click()
        row.locator(".badge.st-completed", has_text="closed").wait_for(timeout=3000)
        own.wait_for(path, 12, timeout=5)
        session.assert_not_reloaded()
        session.assert_all_local()


def test_no_request_leaves_localhost(session: Session, dash_api: ApiClient) -> None:
    session.open()
    session.page.wait_for_timeout(2500)  # the first round of polls
    session.assert_all_local()
    paths = {urlsplit(u).path for u in session.requests}
    assert "/static/htmx-2.0.11.min.js" in paths and "/dashboard/fragments/stats" in paths


# -- screenshots -----------------------------------------------------------------------------


def _seed_demo(api: ApiClient, receiver: Receiver) -> None:
    """Queues, jobs in every status and schedules, as a small production setup would have."""
    ok, flaky, slow = "/hooks/send-email", "/hooks/charge-invoice", "/hooks/build-report"
    receiver.respond(ok, Reply(200, {"delivered": True}, {"Content-Type": "application/json"}))
    receiver.respond(flaky, Reply(503, "upstream payment gateway unavailable"))
    receiver.respond(slow, Reply(200, "done", delay_s=120))
    api.post("/queues", json={"name": "webhooks-out", "max_concurrency": 4,
                              "rate_limit_rps": 5, "paused": True}).expect(201)
    for i in range(9):
        api.post("/jobs", json={
            "callback_url": receiver.url(ok), "queue_name": "emails",
            "payload": {"to": f"user{i}@example.com", "template": "welcome"},
        }).expect(201)
    for i in range(2):
        api.post("/jobs", json={
            "callback_url": receiver.url(flaky), "queue_name": "billing",
            "payload": {"invoice": f"INV-2026-{1041 + i}", "amount_cents": 129900},
            "headers": {"X-Tenant": "acme"}, "max_retries": 1,
        }).expect(201)
    api.post("/jobs", json={"callback_url": receiver.url(slow), "queue_name": "reports",
                            "payload": {"report": "daily-sales"}}).expect(201)
    api.post("/jobs", json={"callback_url": receiver.url(ok), "queue_name": "reports",
                            "delay_ms": 3_600_000, "payload": {"report": "weekly"}}).expect(201)
    api.post("/schedules", json={
        "cron_expression": "0 0 9 * * Mon-Fri", "timezone": "Europe/Prague",
        "callback_url": receiver.url(slow), "queue_name": "reports",
        "payload": {"report": "daily-sales"},
    }).expect(201)
    api.post("/schedules", json={
        "cron_expression": "0 */15 * * * *", "callback_url": receiver.url(ok),
        "queue_name": "emails", "payload": {"digest": True}, "enabled": False,
    }).expect(201)
    wait_until(lambda: len(api.get("/jobs", status="dead").expect(200)) == 2, timeout=15,
               message="the demo's failing jobs did not die")


def _seed_demo_history(db_path: Path, minutes: int = 59) -> None:
    """An hour of made-up traffic before the demo server starts, so that its
    chart shows what a busy hour looks like: a steady flow of email and billing
    deliveries, and a payment gateway outage with retries, dead jobs and slow
    answers in the middle. Written through the backend's own rollup writer."""
    import random

    from mininq.clock import now_ms
    from mininq.metrics import history as rollup
    from mininq.store.sqlite import history, migrate_file
    from mininq.store.sqlite.connection import connect_sync

    migrate_file(str(db_path))
    rnd = random.Random(7)
    rollups: rollup.Rollups = {}
    now = now_ms()
    for back in range(minutes, 0, -1):
        at = now - back * rollup.MINUTE_MS
        outage = 18 <= back <= 27
        for _ in range(rnd.randint(25, 45) + (12 if back % 15 < 4 else 0)):
            rollup.add_created(rollups, "emails", at)
            rollup.add_attempt(rollups, "emails", at, "completed", int(rnd.lognormvariate(3.6, 0.4)))
        for _ in range(rnd.randint(6, 12)):
            rollup.add_created(rollups, "billing", at)
            if outage and rnd.random() < 0.7:
                kind = "dead" if rnd.random() < 0.25 else "retry"
                rollup.add_attempt(rollups, "billing", at, kind, rnd.randint(1500, 5000))
            else:
                rollup.add_attempt(rollups, "billing", at, "completed",
                                   int(rnd.lognormvariate(4.6, 0.5)))
    conn = connect_sync(str(db_path))
    try:
        conn.execute("BEGIN IMMEDIATE")
        history.record(conn, rollups)
        conn.execute("COMMIT")
    finally:
        conn.close()


@pytest.mark.skipif(os.environ.get("MININQ_SCREENSHOTS") != "1",
                    reason="set MININQ_SCREENSHOTS=1 to rewrite docs/screenshots/")
def test_screenshots(browser, make_server) -> None:
    srv = make_server(SERVER_CONFIG, start=False)
    _seed_demo_history(srv.db_path)
    srv.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with Receiver() as receiver, srv.client() as api:
        _seed_demo(api, receiver)
        dead = api.get("/jobs", status="dead").expect(200)[0]["id"]
        for width in (1280, 390):
            for scheme in ("light", "dark"):
                s = Session(browser, srv.url, width, scheme)
                # Wide: a dead job open beside the table. Narrow: the overview.
                s.open(f"/dashboard?job={dead}" if width > 500 else "/dashboard")
                s.page.wait_for_timeout(1200)
                out = SCREENSHOTS / f"dashboard-{width}-{scheme}.png"
                s.page.screenshot(path=str(out), full_page=True)
                s.assert_all_local()
                s.close()
                assert not s.errors, s.errors
                print(f"{out}: {out.stat().st_size} bytes")


# -- the activity chart ------------------------------------------------------------------------


def test_chart_after_a_burst_of_jobs(session: Session, dash_api: ApiClient,
                                     receiver: Receiver) -> None:
    page = session.page
    queue = unique_queue()
    ok, failing = receiver.new_path(), receiver.new_path()
    receiver.respond(failing, Reply(500, "down"))
    session.open()
    chart = page.locator("#chart svg.chart-wide")
    chart.wait_for()
    jobs = [{"callback_url": receiver.url(ok), "queue_name": queue}] * 30
    jobs += [{"callback_url": receiver.url(failing), "queue_name": queue, "max_retries": 1}] * 3
    dash_api.post("/jobs/batch", json={"jobs": jobs}).expect(201)
    receiver.wait_for(ok, 30)
    receiver.wait_for(failing, 6)
    page.fill("#chart-queue", queue)  # the chart of this queue only: exact numbers
    legend = page.locator("#chart .legend")

    def legend_text() -> str:
        return " ".join(legend.text_content().split())

    wait_until(lambda: "Completed 30" in legend_text() and "Dead 3" in legend_text(),
               timeout=6, message=lambda: f"legend: {legend_text()!r}")
    assert "Retried 3" in legend_text() and "p99 duration" in legend_text()
    for name in ("completed", "retried", "dead"):
        d = chart.locator(f"path.bar-{name}").get_attribute("d")
        assert d and d.startswith("M"), f"no {name} bars: {d!r}"
    assert chart.locator("path.p99-line").count() == 1
    box = chart.bounding_box()
    assert box and box["width"] > 900, box  # spans the panel at 1280 px
    assert "attempts per minute" in chart.inner_html()
    # 7 days: hourly bars, the same totals, and it keeps polling without a reload.
    page.locator("#chart-controls label", has_text="7 d").click()
    page.locator("#chart svg.chart-wide title", has_text="the last 7 days").wait_for(
        state="attached", timeout=4000)
    assert "Completed 30" in legend_text()
    assert "attempts per hour" in chart.inner_html()
    page.wait_for_timeout(2500)  # a poll with the switch set keeps the 7 d chart
    assert "attempts per hour" in chart.inner_html()
    session.assert_not_reloaded()
    session.assert_all_local()


def test_chart_at_390_px_in_dark_mode(browser, dash: MininqServer) -> None:
    s = Session(browser, dash.url, width=390, scheme="dark")
    try:
        s.open()
        narrow = s.page.locator("#chart svg.chart-narrow")
        narrow.wait_for()
        assert s.page.locator("#chart svg.chart-wide").is_hidden()
        box = narrow.bounding_box()
        assert box and 340 <= box["width"] <= 390, box
        width = s.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways: {width} px wide"
        fill = s.page.evaluate(
            "getComputedStyle(document.querySelector('#chart svg.chart-narrow text.axis')).fill")
        assert fill != "rgb(0, 0, 0)", "axis text is black on the dark theme"
    finally:
        s.close()
    assert not s.errors, s.errors
