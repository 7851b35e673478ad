"""/health, /metrics, /metrics/prometheus, /openapi.json, the api_token, and the
configuration precedence (file < environment < flag) seen through a real server."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import ApiClient, MininqServer, Receiver, free_port
from support.asserts import assert_error
from support.server import REPO_ROOT

import mininq

NOWHERE = "http://127.0.0.1:9/never"
TOKEN = "s3cret-Token_42"
FILE_TOKEN = "token-from-the-file"

# The route table of SPEC §5, in its order.
SPEC_ROUTES = [
    ("GET", "/health"),
    ("GET", "/nodes"),  # §9
    ("POST", "/jobs"),
    ("POST", "/jobs/batch"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{id}"),
    ("GET", "/jobs/{id}/attempts"),
    ("DELETE", "/jobs/{id}"),
    ("POST", "/jobs/{id}/retry"),
    ("POST", "/queues"),
    ("GET", "/queues"),
    ("GET", "/queues/{name}"),
    ("PUT", "/queues/{name}"),
    ("DELETE", "/queues/{name}"),
    ("POST", "/queues/{name}/pause"),
    ("POST", "/queues/{name}/resume"),
    ("POST", "/queues/{name}/retry-dead"),
    ("POST", "/queues/{name}/purge"),
    ("POST", "/schedules"),
    ("GET", "/schedules"),
    ("GET", "/schedules/{id}"),
    ("PUT", "/schedules/{id}"),
    ("DELETE", "/schedules/{id}"),
    ("POST", "/schedules/{id}/trigger"),
    ("GET", "/metrics"),
    ("GET", "/metrics/prometheus"),
    ("GET", "/metrics/history"),
    ("GET", "/openapi.json"),
    ("GET", "/dashboard"),
    ("GET", "/destinations"),  # §10
    ("POST", "/destinations/reset"),
]
PROMETHEUS_FAMILIES = {
    "mininq_jobs": "gauge",
    "mininq_jobs_created_total": "counter",
    "mininq_deliveries_total": "counter",
    "mininq_delivery_duration_seconds": "histogram",
    "mininq_queue_oldest_pending_age_seconds": "gauge",
    "mininq_in_flight": "gauge",
    "mininq_schedule_fires_total": "counter",
    "mininq_engine_up": "gauge",
    "mininq_destination_state": "gauge",
    "mininq_destination_in_flight": "gauge",
    "mininq_destination_limit": "gauge",
}
SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$')


# -- /health ----------------------------------------------------------------------


def test_health(api):
    resp = api.get("/health")
    body = resp.expect(200)
    assert body == {"status": "ok", "version": mininq.__version__, "database": "sqlite",
                    "node": body["node"]}
    assert [n["id"] for n in api.get("/nodes").expect(200)] == [body["node"]]
    assert resp.headers["content-type"].startswith("application/json")


# -- /metrics ---------------------------------------------------------------------


def test_metrics_shape_and_counts(api, qname):
    api.post("/queues", {"name": qname, "paused": True}).expect(201)
    jobs = [api.post("/jobs", {"callback_url": NOWHERE, "queue_name": qname}).expect(201)
            for _ in range(3)]  # fmt: skip
    api.delete(f"/jobs/{jobs[0]['id']}").expect(200)
    api.post("/schedules", {"cron_expression": "0 0 0 1 1 *", "callback_url": NOWHERE,
                            "queue_name": qname, "enabled": False}).expect(201)  # fmt: skip
    m = api.get("/metrics").expect(200)
    assert set(m) == {"uptime_secs", "version", "jobs", "queues", "schedules"}
    assert type(m["uptime_secs"]) is int and m["uptime_secs"] >= 0
    assert m["version"] == mininq.__version__
    assert set(m["jobs"]) == {"total", "pending", "running", "completed", "dead", "cancelled"}
    assert all(type(v) is int and v >= 0 for v in m["jobs"].values()), m["jobs"]
    assert m["jobs"]["total"] == sum(v for k, v in m["jobs"].items() if k != "total")
    assert m["jobs"]["pending"] >= 2 and m["jobs"]["cancelled"] >= 1
    ours = [q for q in m["queues"] if q["name"] == qname]
    assert ours == [{"name": qname, "paused": True, "depth": 2, "in_flight": 0}], ours
    names = [q["name"] for q in m["queues"]]
    assert names == sorted(names)
    assert set(m["schedules"]) == {"total", "enabled"}
    assert (
        m["schedules"]["total"] >= 1 and 0 <= m["schedules"]["enabled"] <= m["schedules"]["total"]
    )


# -- /metrics/prometheus ------------------------------------------------------------


def parse_prometheus(text: str) -> tuple[dict[str, str], dict[str, float]]:
    """(family -> type, 'name{labels}' -> value); every line must be well formed."""
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif line.startswith("# HELP ") or not line:
            continue
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed sample line: {line!r}"
            samples[line.rsplit(" ", 1)[0]] = float(match.group(3))
    return types, samples


def test_prometheus_families_and_values(api, qname, receiver: Receiver):
    path = receiver.new_path()
    done = api.post("/jobs", {"callback_url": receiver.url(path), "queue_name": qname}).expect(201)
    api.wait_job(done["id"], "completed")
    api.post(f"/queues/{qname}/pause").expect(200)
    waiting = api.post("/jobs", {"callback_url": NOWHERE, "queue_name": qname}).expect(201)
    resp = api.get("/metrics/prometheus")
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4"), resp.headers
    types, samples = parse_prometheus(resp.text)
    for family, kind in PROMETHEUS_FAMILIES.items():
        assert types.get(family) == kind, f"{family}: {types.get(family)}"
    q = f'queue="{qname}"'
    assert samples[f'mininq_jobs{{{q},status="pending"}}'] == 1
    assert samples[f'mininq_jobs{{{q},status="completed"}}'] == 1
    assert samples[f'mininq_jobs{{{q},status="dead"}}'] == 0
    assert samples[f"mininq_jobs_created_total{{{q}}}"] == 2
    assert samples[f'mininq_deliveries_total{{{q},outcome="completed"}}'] == 1
    assert samples[f"mininq_in_flight{{{q}}}"] == 0
    assert samples[f"mininq_delivery_duration_seconds_count{{{q}}}"] == 1
    assert samples[f'mininq_delivery_duration_seconds_bucket{{{q},le="+Inf"}}'] == 1
    buckets = [v for k, v in samples.items()
               if k.startswith(f"mininq_delivery_duration_seconds_bucket{{{q},")]  # fmt: skip
    assert buckets == sorted(buckets), "histogram buckets are cumulative"
    assert 0 <= samples[f"mininq_delivery_duration_seconds_sum{{{q}}}"] < 5
    age = samples[f"mininq_queue_oldest_pending_age_seconds{{{q}}}"]
    assert 0 <= age < 60, f"oldest pending job of {qname} is {age} s old; {waiting['created_at']}"
    assert samples["mininq_engine_up"] == 1
    assert "mininq_schedule_fires_total" in samples


def test_prometheus_escapes_label_values(api):
    # Queue names can't hold quotes or backslashes, so every label value is plain;
    # the whole page must still parse line by line (checked in parse_prometheus).
    parse_prometheus(api.get("/metrics/prometheus").text)


# -- /openapi.json ------------------------------------------------------------------


def _template(path: str) -> str:
    """`/jobs/<job_id:str>` and `/jobs/{id}` both become `/jobs/{}`."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", "/" + path.lstrip("/"))


@pytest.fixture(scope="module")
def openapi(api: ApiClient) -> dict[str, Any]:
    resp = api.get("/openapi.json")
    assert resp.headers["content-type"].startswith("application/json")
    return resp.expect(200)


@pytest.fixture(scope="module")
def router_routes() -> set[tuple[str, str]]:
    """(method, template) of every route of the app mininq serves, from Sanic's router.

    Built in a child process: Sanic keeps a registry of app names per process."""
    code = (
        "import json; from mininq.config import load_config; from mininq.app import create_app\n"
        "app = create_app(load_config(None, overrides={}))\n"
        "print(json.dumps([[m, r.path] for r in app.router.routes for m in r.methods]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)}, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {(m, _template(p)) for m, p in json.loads(out.stdout.splitlines()[-1])}


def test_openapi_is_a_valid_3_1_document(openapi):
    from openapi_spec_validator import validate

    assert openapi["openapi"] == "3.1.0"
    assert openapi["info"]["version"] == mininq.__version__
    validate(openapi)


def test_openapi_describes_every_route_of_the_spec(openapi):
    described = {
        (method.upper(), _template(path))
        for path, item in openapi["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    wanted = {(m, _template(p)) for m, p in SPEC_ROUTES}
    assert wanted - described == set(), "routes of SPEC §5 missing from /openapi.json"
    assert described - wanted == set(), "routes in /openapi.json that SPEC §5 does not have"


def test_openapi_matches_the_router(openapi, router_routes):
    described = {
        (method.upper(), _template(path))
        for path, item in openapi["paths"].items()
        for method in item
        if method != "parameters"
    }
    api_routes = {
        (m, p) for m, p in router_routes
        if not p.startswith(("/dashboard/", "/static/")) and m != "HEAD"
    }  # fmt: skip
    assert api_routes - described == set(), "routes the app serves but /openapi.json omits"
    assert described - router_routes == set(), "routes /openapi.json has but the app does not"


def test_openapi_security_and_error_shape(openapi, token_server):
    assert openapi["components"]["securitySchemes"]["bearerAuth"] == {
        **openapi["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    # The document describes the server that serves it: the token is required
    # only where one is configured.
    assert "security" not in openapi
    with token_server.client(token=TOKEN) as c:
        assert c.get("/openapi.json").expect(200)["security"] == [{"bearerAuth": []}]
    assert openapi["paths"]["/health"]["get"]["security"] == []
    error = openapi["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "status"}
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            codes = set(op["responses"])
            if path != "/health":
                assert "401" in codes, f"{method} {path} lacks 401"
            if "requestBody" in op:
                assert {"400", "413"} <= codes, f"{method} {path} lacks 400/413"
            for name in ("Job", "Queue", "Schedule"):
                assert name in openapi["components"]["schemas"]
    for name in ("JobCreate", "JobBatchCreate", "QueueCreate", "QueueUpdate", "ScheduleCreate",
                 "ScheduleUpdate"):  # fmt: skip
        assert openapi["components"]["schemas"][name]["type"] == "object"


def _validator(openapi: dict[str, Any], name: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resource = Resource.from_contents(openapi, default_specification=_draft2020())
    registry = Registry().with_resource("urn:mininq:openapi", resource)
    return Draft202012Validator(
        {"$ref": f"urn:mininq:openapi#/components/schemas/{name}"}, registry=registry
    )


def _draft2020():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def assert_matches(openapi: dict[str, Any], name: str, instance: Any) -> None:
    errors = [e.message for e in _validator(openapi, name).iter_errors(instance)]
    assert not errors, f"{name} schema vs real answer: {errors[:5]}\n{instance}"


def test_real_answers_match_the_documented_schemas(api, openapi, qname, receiver: Receiver):
    path = receiver.new_path()
    job = api.post("/jobs", {"callback_url": receiver.url(path), "queue_name": qname,
                             "headers": {"X-A": "b"}, "payload": [1]}).expect(201)  # fmt: skip
    api.wait_job(job["id"], "completed")

    def check(name: str, value: Any) -> None:
        assert_matches(openapi, name, value)

    check("Job", api.get(f"/jobs/{job['id']}").expect(200))
    check("Attempt", api.get(f"/jobs/{job['id']}/attempts").expect(200)[0])
    api.post(f"/queues/{qname}/pause").expect(200)
    batch = api.post("/jobs/batch", {"jobs": [{"callback_url": NOWHERE, "queue_name": qname,
                                               "delay_ms": 10}]}).expect(201)  # fmt: skip
    check("JobBatch", batch)
    pending = batch["jobs"][0]
    check("JobCancelled", api.delete(f"/jobs/{pending['id']}").expect(200))
    check("Job", api.post(f"/jobs/{pending['id']}/retry").expect(200))
    for queue in api.get("/queues").expect(200):
        check("Queue", queue)
    check("Queue", api.put(f"/queues/{qname}", {"rate_limit_rps": 1.5}).expect(200))
    check("RetriedCount", api.post(f"/queues/{qname}/retry-dead").expect(200))
    check(
        "PurgedCount", api.post(f"/queues/{qname}/purge", query={"status": "pending"}).expect(200)
    )
    schedule = api.post("/schedules", {"cron_expression": "0 0 0 1 1 *", "callback_url": NOWHERE,
                                       "queue_name": qname, "enabled": False}).expect(201)  # fmt: skip
    for s in api.get("/schedules").expect(200):
        check("Schedule", s)
    check("Job", api.post(f"/schedules/{schedule['id']}/trigger").expect(201))
    check("ScheduleDeleted", api.delete(f"/schedules/{schedule['id']}").expect(200))
    api.post(f"/queues/{qname}/purge", query={"status": "pending"}).expect(200)
    check("QueueDeleted", api.delete(f"/queues/{qname}").expect(200))
    check("Metrics", api.get("/metrics").expect(200))
    for minute in api.get("/metrics/history", minutes=3).expect(200):
        check("HistoryMinute", minute)
    check("Health", api.get("/health").expect(200))
    check("Error", api.get("/jobs/nope").json)
    check("Error", api.post("/jobs", {"bogus": 1}).json)


@pytest.mark.parametrize(
    "body",
    [
        {"callback_url": NOWHERE},
        {"callback_url": NOWHERE, "priority": 5, "payload": None, "max_retries": None},
        {"callback_url": NOWHERE, "priority": 1.5},
        {"callback_url": NOWHERE, "priority": True},
        {"callback_url": NOWHERE, "max_retries": -1},
        {"callback_url": NOWHERE, "retry_backoff": "sometimes"},
        {"callback_url": NOWHERE, "queue_name": "a b"},
        {"callback_url": NOWHERE, "timeout_ms": 0},
        {"callback_url": NOWHERE, "surprise": 1},
        {"callback_url": NOWHERE, "headers": {"X-A": 1}},
        {"callback_url": NOWHERE, "delay_ms": -5},
        {"priority": 1},
    ],
)
def test_the_job_create_schema_agrees_with_the_server(api, openapi, qname, body):
    body = {**body, "queue_name": body.get("queue_name", qname)}
    documented = not list(_validator(openapi, "JobCreate").iter_errors(body))
    if documented and "delay_ms" not in body:
        body["delay_ms"] = 3_600_000  # keep an accepted job from being delivered
    resp = api.post("/jobs", body)
    assert resp.status in (201, 400), resp
    assert documented == (resp.status == 201), f"schema says {documented}, server {resp}"


# -- api_token and configuration precedence, through one server ---------------------


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MininqServer]:
    """A server configured in three layers (flags > environment > file): the port and
    database in all three, the body limit and the api_token in file and environment."""
    workdir = tmp_path_factory.mktemp("layered")
    file_port, env_port = free_port(), free_port()
    srv = MininqServer(
        workdir,
        config_toml=(
            f"[server]\nport = {file_port}\nmax_body_bytes = 1000\n"
            f'db_path = "from-file.db"\napi_token = "{FILE_TOKEN}"\n'
        ),
        env={
            "MININQ_PORT": str(env_port),
            "MININQ_SERVER_MAX_BODY_BYTES": "3000",
            "MININQ_DB_PATH": str(workdir / "from-env.db"),
            "MININQ_API_TOKEN": TOKEN,
        },
    )
    srv.file_port, srv.env_port = file_port, env_port  # type: ignore[attr-defined]
    with srv:
        yield srv


def _concrete(path: str) -> str:
    return path.replace("{id}", "01900000-0000-7000-8000-000000000000").replace("{name}", "q")


@pytest.mark.parametrize("method, path", [r for r in SPEC_ROUTES if r[1] != "/health"])
def test_every_route_but_health_needs_the_token(token_server, method, path):
    url = _concrete(path)
    with token_server.client() as anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
            {"Authorization": "Bearer "},
        ):
            resp = anonymous.request(
                method, url, headers=headers, json={} if method in ("POST", "PUT") else None
            )
            assert resp.status == 401, f"{method} {url} with {headers}: {resp}"
            if path != "/dashboard":  # the dashboard answers 401 with its sign-in page
                assert "token" in assert_error(resp, 401)


def test_health_needs_no_token(token_server):
    with token_server.client() as anonymous:
        assert anonymous.get("/health").expect(200)["status"] == "ok"


def test_every_route_works_with_the_token(token_server):
    """One pass over the whole API with the token; each SPEC route answers its success code."""
    done: set[tuple[str, str]] = set()
    with token_server.client(token=TOKEN) as c:

        def call(method: str, template: str, status: int, values: dict[str, str] | None = None,
                 **kwargs: Any) -> Any:  # fmt: skip
            path = template.format(**(values or {}))
            done.add((method, template))
            return c.request(method, path, **kwargs).expect(status)

        q = {"name": "tok"}
        call("POST", "/queues", 201, json={"name": "tok", "paused": True})
        call("GET", "/queues", 200)
        call("GET", "/queues/{name}", 200, q)
        call("PUT", "/queues/{name}", 200, q, json={"max_retries": 1})
        job = call("POST", "/jobs", 201, json={"callback_url": NOWHERE, "queue_name": "tok"})
        j = {"id": job["id"]}
        call("POST", "/jobs/batch", 201, json={"jobs": [{"callback_url": NOWHERE,
                                                         "queue_name": "tok"}]})  # fmt: skip
        call("GET", "/jobs", 200)
        call("GET", "/jobs/{id}", 200, j)
        call("GET", "/jobs/{id}/attempts", 200, j)
        call("DELETE", "/jobs/{id}", 200, j)
        call("POST", "/jobs/{id}/retry", 200, j)
        call("POST", "/queues/{name}/pause", 200, q)
        c.post("/queues", {"name": "tok-empty"}).expect(201)
        call("POST", "/queues/{name}/resume", 200, {"name": "tok-empty"})
        call("POST", "/queues/{name}/retry-dead", 200, q)
        call("POST", "/queues/{name}/purge", 200, q, query={"status": "pending"})
        call("DELETE", "/queues/{name}", 200, q)
        s = call(
            "POST",
            "/schedules",
            201,
            json={
                "cron_expression": "0 0 0 1 1 *",
                "callback_url": NOWHERE,
                "queue_name": "tok-empty",
                "enabled": False,
            },
        )
        sid = {"id": s["id"]}
        call("GET", "/schedules", 200)
        call("GET", "/schedules/{id}", 200, sid)
        call("PUT", "/schedules/{id}", 200, sid, json={"timezone": "Europe/Prague"})
        call("POST", "/queues/{name}/pause", 200, {"name": "tok-empty"})
        call("POST", "/schedules/{id}/trigger", 201, sid)
        call("DELETE", "/schedules/{id}", 200, sid)
        call("GET", "/metrics", 200)
        call("GET", "/metrics/history", 200)
        done.add(("GET", "/metrics/prometheus"))
        assert c.get("/metrics/prometheus").status == 200
        call("GET", "/openapi.json", 200)
        call("GET", "/health", 200)
        call("GET", "/nodes", 200)
        call("GET", "/destinations", 200)
        # Past the token check to the route itself: no engine has seen this one.
        call("POST", "/destinations/reset", 404, json={"destination": "http://unseen:1"})
        done.add(("GET", "/dashboard"))
        dashboard = c.get("/dashboard")
        assert dashboard.status == 200 and "text/html" in dashboard.headers["content-type"]
        assert c.get("/jobs", queue="tok-empty").expect(200)[0]["schedule_id"] == s["id"]
    assert done == set(SPEC_ROUTES), set(SPEC_ROUTES) ^ done


def test_the_bearer_scheme_is_case_insensitive(token_server):
    with token_server.client() as c:
        for scheme in ("bearer", "BEARER", "Bearer"):
            resp = c.request("GET", "/jobs", headers={"Authorization": f"{scheme} {TOKEN}"})
            assert resp.status == 200, (scheme, resp)


def test_flags_beat_environment_beat_file(token_server):
    srv = token_server
    with srv.client(token=FILE_TOKEN) as c:
        assert_error(c.get("/jobs"), 401)  # the environment's token replaced the file's
    with srv.client(token=TOKEN) as c:
        c.get("/health").expect(200)  # on the --port of the command line
        job = {"callback_url": NOWHERE, "queue_name": "layers", "delay_ms": 3_600_000}
        raw = json.dumps(job).encode()
        fits = raw[:-1] + b" " * (3000 - len(raw)) + b"}"
        c.post("/jobs", raw=fits).expect(201)  # over the file's 1000, within the env's 3000
        too_big = assert_error(c.post("/jobs", raw=fits + b" "), 413)
        assert "3000" in too_big, too_big
    assert _refuses(srv.file_port) and _refuses(srv.env_port), "listening on a losing port"
    assert srv.db_path.exists(), "the --db-path flag was not used"
    assert (
        not (srv.workdir / "from-env.db").exists() and not (srv.workdir / "from-file.db").exists()
    )
    db = sqlite3.connect(srv.db_path)
    try:
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE queue_name = 'layers'").fetchone() == (
            1,
        )
    finally:
        db.close()


def test_health_is_503_while_the_database_cannot_be_written(token_server):
    """Another process holds the write lock: /health gives up after its 5 s budget."""
    locker = sqlite3.connect(token_server.db_path, isolation_level=None, timeout=10)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with token_server.client() as c:
            started = time.monotonic()
            resp = c.get("/health")
            waited = time.monotonic() - started
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert resp.status == 503, resp
    assert resp.json["status"] == 503 and resp.json["version"] == mininq.__version__
    assert "database" in resp.json["error"], resp.json
    assert 4 <= waited <= 10, f"503 after {waited:.1f} s"
    with token_server.client() as c:
        c.get("/health").expect(200)
