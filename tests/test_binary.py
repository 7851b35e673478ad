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


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory holding only a copy of the executable."""
    assert BINARY is not None
    where = tmp_path / "run"
    where.mkdir()
    shutil.copy2(BINARY, where / "mininq")
    env = bare_env(where)
    for program in ("python3", "python", "python3.11", "sh"):
        assert shutil.which(program, path=env["PATH"]) is None, f"{program} is reachable"
    return where


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


@pytest.fixture
def bare_server(workdir: Path) -> Iterator[BareBinary]:
    srv = BareBinary(workdir)
    srv.start(timeout=30)
    yield srv
    if srv.running:
        srv.kill9()


def test_serve_deliver_backup_stop(
    bare_server: BareBinary, workdir: Path, receiver: Receiver, tmp_path: Path
) -> None:
    server = bare_server
    api = server.client()

    # Started in an empty directory: the default database file appears there.
    assert (workdir / "mininq.db").is_file()
    health = api.get("/health").expect(200)
    assert health == {"status": "ok", "version": mininq.__version__}

    # Every process is this executable: the spawned HTTP worker and engine
    # re-execute it rather than reaching for a Python interpreter.
    pids = server.pids()
    assert len(pids) >= 3, f"expected main, HTTP worker and engine, got {pids}"
    exes = {pid: os.readlink(f"/proc/{pid}/exe") for pid in pids}
    assert set(exes.values()) == {str(workdir / "mininq")}, exes

    # A job is delivered to a real receiver.
    path = receiver.new_path()
    job = api.post(
        "/jobs", json={"callback_url": receiver.url(path), "payload": {"frozen": True}}
    ).expect(201)
    [hit] = receiver.wait_for(path, 1, timeout=15)
    assert hit.json == {"frozen": True}
    assert hit.headers["x-mininq-job-id"] == job["id"]
    assert hit.headers["user-agent"] == f"mininq/{mininq.__version__}"
    done = api.wait_job(job["id"], "completed")
    assert done["attempt"] == 1

    # Time zones come from the bundled tzdata (PYTHONTZPATH is empty).
    schedule = api.post(
        "/schedules",
        json={
            "cron_expression": "0 0 3 * * *",
            "timezone": "Europe/Prague",
            "callback_url": receiver.url(receiver.new_path()),
        },
    ).expect(201)
    assert schedule["next_run_at"].endswith("Z"), schedule

    # The dashboard and its vendored static assets are served from inside.
    dashboard = api.get("/dashboard")
    assert dashboard.status == 200, dashboard
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', dashboard.text):
        assert api.get(asset).status == 200, f"{asset} missing from the executable"

    # Online backup of the live database.
    dest = tmp_path / "backup.db"
    backed_up = run(workdir, "backup", str(dest))
    assert backed_up.returncode == 0, backed_up.stderr
    with sqlite3.connect(dest) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ids = [row[0] for row in copy.execute("SELECT id FROM jobs")]
    assert job["id"] in ids, ids

    api.close()
    code = server.stop(signal.SIGTERM, timeout=40)
    assert code == 0, server.log_tail()
    assert leftover_extractions(workdir) == [], "the one-file extraction folder was left behind"
    assert_no_tracebacks(server.log_text())


def assert_no_tracebacks(log: str) -> None:
    assert "Traceback" not in log, f"a traceback in the server log:\n{log[-4000:]}"
