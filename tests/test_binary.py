"""The frozen executable on its own: an empty directory, no Python on PATH.

Runs only when MININQ_TEST_BINARY names the executable (`just build` makes
dist/mininq). Each test copies it into an empty temporary directory and runs
`./mininq` there with PATH pointing at an empty directory, so nothing from
this machine's Python can be reached, and with PYTHONTZPATH pointing at an
empty directory, so time zones must come from the tzdata bundled inside (as
on a machine without /usr/share/zoneinfo).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import MininqServer, Receiver
from support.server import BINARY_ENV

import mininq

BINARY = os.environ.get(BINARY_ENV)

pytestmark = pytest.mark.skipif(
    not BINARY, reason=f"set {BINARY_ENV} to the executable (dist/mininq) to test it"
)


class BareBinary(MininqServer):
    """`./mininq` with no arguments (serve is the default, ./mininq.db the default
    database), in `workdir`, with nothing of the caller's environment but the port."""

    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.extra_env = dict(extra_env or {})

    @property
    def command(self) -> list[str]:
        return ["./mininq"]

    def environment(self) -> dict[str, str]:
        return bare_env(self.workdir) | {"MININQ_PORT": str(self.port)} | self.extra_env


def bare_env(workdir: Path) -> dict[str, str]:
    """A minimal environment: PATH and PYTHONTZPATH point at empty directories,
    one-file extraction goes into the workdir (checked for leftovers)."""
    empty = workdir.parent / "empty"
    tmp = workdir.parent / "tmp"
    empty.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    return {
        "PATH": str(empty),
        "PYTHONTZPATH": str(empty),
        "TMPDIR": str(tmp),
        "HOME": str(workdir),
        "LANG": "C",
    }


def fresh_workdir(parent: Path) -> Path:
    """An empty directory holding only a copy of the executable."""
    assert BINARY is not None
    where = parent / "run"
    where.mkdir()
    shutil.copy2(BINARY, where / "mininq")
    env = bare_env(where)
    for program in ("python3", "python", "python3.11", "sh"):
        assert shutil.which(program, path=env["PATH"]) is None, f"{program} is reachable"
    return where


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return fresh_workdir(tmp_path)


def run(workdir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./mininq", *args],
        check=False,
        cwd=workdir,
        env=bare_env(workdir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def leftover_extractions(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir.parent / "tmp").glob("_MEI*"))


def test_version(workdir: Path) -> None:
    done = run(workdir, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mininq {mininq.__version__}"
    assert sorted(p.name for p in workdir.iterdir()) == ["mininq"], "--version wrote files"


def test_help(workdir: Path) -> None:
    done = run(workdir, "--help")
    assert done.returncode == 0, done.stderr
    for word in ("serve", "check-config", "backup", "--config", "--port"):
        assert word in done.stdout, f"{word!r} missing from --help:\n{done.stdout}"


def test_check_config(workdir: Path) -> None:
    (workdir / "mininq.toml").write_text('[server]\nport = 7001\napi_token = "s3cret"\n')
    done = run(workdir, "check-config")
    assert done.returncode == 0, done.stderr
    assert "port = 7001" in done.stdout, done.stdout
    assert 'db_path = "mininq.db"' in done.stdout, done.stdout
    assert "s3cret" not in done.stdout, "the token is printed unmasked"

    (workdir / "mininq.toml").write_text("[server]\nbogus = 1\n")
    done = run(workdir, "check-config")
    assert done.returncode != 0
    assert "server.bogus" in done.stderr, done.stderr


# -- one server for the rest of the module; the last test stops it ------------


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareBinary]:
    srv = BareBinary(fresh_workdir(tmp_path_factory.mktemp("frozen")))
    srv.start(timeout=30)
    yield srv
    if srv.running:
        srv.kill9()


def test_serve_creates_database_in_working_directory(frozen: BareBinary) -> None:
    assert (frozen.workdir / "mininq.db").is_file()
    with frozen.client() as api:
        health = api.get("/health").expect(200)
    assert health == {"status": "ok", "version": mininq.__version__, "database": "sqlite",
                      "node": health["node"]}


def test_every_process_is_the_executable(frozen: BareBinary) -> None:
    """The HTTP worker and the engine are spawned by re-executing the binary,
    not by reaching for a Python interpreter."""
    pids = frozen.pids()
    assert len(pids) >= 3, f"expected main, HTTP worker and engine, got {pids}"
    exes = {pid: os.readlink(f"/proc/{pid}/exe") for pid in pids}
    assert set(exes.values()) == {str(frozen.workdir / "mininq")}, exes


def test_job_is_delivered(frozen: BareBinary, receiver: Receiver) -> None:
    path = receiver.new_path()
    with frozen.client() as api:
        job = api.post(
            "/jobs", json={"callback_url": receiver.url(path), "payload": {"frozen": True}}
        ).expect(201)
        [hit] = receiver.wait_for(path, 1, timeout=15)
        assert hit.json == {"frozen": True}
        assert hit.headers["x-mininq-job-id"] == job["id"]
        assert hit.headers["user-agent"] == f"mininq/{mininq.__version__}"
        assert api.wait_job(job["id"], "completed")["attempt"] == 1


def test_time_zones_come_from_bundled_tzdata(frozen: BareBinary, receiver: Receiver) -> None:
    """PYTHONTZPATH is empty: only the tzdata inside the executable knows Prague."""
    with frozen.client() as api:
        schedule = api.post(
            "/schedules",
            json={
                "cron_expression": "0 0 3 * * *",
                "timezone": "Europe/Prague",
                "callback_url": receiver.url(receiver.new_path()),
            },
        ).expect(201)
    # 03:00 in Prague is 01:00 or 02:00 UTC, depending on daylight saving time.
    assert schedule["next_run_at"][11:19] in ("01:00:00", "02:00:00"), schedule


def test_dashboard_and_static_assets_are_inside(frozen: BareBinary) -> None:
    with frozen.client() as api:
        dashboard = api.get("/dashboard")
        assert dashboard.status == 200, dashboard
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', dashboard.text)
        assert assets, f"no /static/ asset linked from the dashboard:\n{dashboard.text[:2000]}"
        for asset in assets:
            assert api.get(asset).status == 200, f"{asset} missing from the executable"


def test_backup_of_the_live_database(frozen: BareBinary, tmp_path: Path) -> None:
    with frozen.client() as api:
        job = api.post("/jobs", json={"callback_url": "http://127.0.0.1:9/", "delay_ms": 3_600_000})
        job_id = job.expect(201)["id"]
    dest = tmp_path / "backup.db"
    done = run(frozen.workdir, "backup", str(dest))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(dest) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [row[0] for row in copy.execute("SELECT id FROM jobs")]
    assert job_id in ids, ids


def test_sigterm_exits_0_and_leaves_nothing(frozen: BareBinary) -> None:
    code = frozen.stop(signal.SIGTERM, timeout=40)  # also fails on leftover processes
    assert code == 0, frozen.log_tail()
    assert leftover_extractions(frozen.workdir) == [], "the one-file extraction was left behind"
    assert "Traceback" not in frozen.log_text(), frozen.log_text()[-4000:]
