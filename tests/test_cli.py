"""The real `mininq` command in a subprocess (or the frozen binary in MININQ_TEST_BINARY)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import mininq

REPO = Path(__file__).resolve().parent.parent


def mininq_cmd() -> list[str]:
    binary = os.environ.get("MININQ_TEST_BINARY")
    return [binary] if binary else [sys.executable, "-m", "mininq"]


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run mininq with a clean MININQ_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MININQ_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), base.get("PYTHONPATH")]))
    return subprocess.run(
        mininq_cmd() + args,
        check=False,
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version(tmp_path):
    result = run(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mininq {mininq.__version__}"


def test_help_lists_commands_and_flags(tmp_path):
    result = run(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for word in ("serve", "check-config", "backup", "--config", "--host", "--port", "--db-path",
                 "--log-level", "--version"):  # fmt: skip
        assert word in result.stdout


def test_check_config_shows_precedence_file_env_flag(tmp_path):
    config = tmp_path / "custom.toml"
    config.write_text(
        '[server]\nport = 7001\nhost = "10.1.1.1"\ndb_path = "file.db"\napi_token = "tok-file"\n'
        "[worker]\nconcurrency = 5\n"
    )
    result = run(
        ["check-config", "-c", str(config), "--port", "7003"],
        tmp_path,
        env={
            "MININQ_PORT": "7002",
            "MININQ_SERVER_HOST": "10.2.2.2",
            "MININQ_WORKER_QUEUES": "a,b",
        },
    )
    assert result.returncode == 0, result.stderr
    effective = tomllib.loads(result.stdout)
    assert effective["server"]["port"] == 7003  # flag beats env beats file
    assert effective["server"]["host"] == "10.2.2.2"  # env beats file
    assert effective["server"]["db_path"] == "file.db"  # file beats default
    assert effective["worker"]["concurrency"] == 5
    assert effective["worker"]["queues"] == ["a", "b"]
    assert effective["worker"]["poll_interval_ms"] == 500  # default
    assert effective["server"]["api_token"] == "********"
    assert "tok-file" not in result.stdout


def test_check_config_reads_mininq_toml_in_the_working_directory(tmp_path):
    (tmp_path / "mininq.toml").write_text('[logging]\nformat = "pretty"\n')
    result = run(["check-config", "--log-level", "warn"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout)["logging"] == {"level": "warn", "format": "pretty"}


def test_flags_before_the_command_apply_too(tmp_path):
    result = run(["--port", "7009", "check-config"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert tomllib.loads(result.stdout)["server"]["port"] == 7009


def test_bad_key_exits_2_naming_it(tmp_path):
    config = tmp_path / "mininq.toml"
    config.write_text("[worker]\nconcurency = 8\n")
    result = run(["check-config"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("mininq: config error: worker.concurency: unknown key")
    assert result.stdout == ""


def test_bad_env_value_exits_2_naming_the_variable(tmp_path):
    result = run(["check-config"], tmp_path, env={"MININQ_WORKER_CONCURRENCY": "x"})
    assert result.returncode == 2
    assert "MININQ_WORKER_CONCURRENCY: expected an integer, got 'x'" in result.stderr


def test_serve_with_bad_config_exits_2_before_starting(tmp_path):
    result = run(["serve", "--port", "0"], tmp_path)
    assert result.returncode == 2
    assert "mininq: config error: server.port" in result.stderr
    result = run(["--log-level", "loud"], tmp_path)  # no command: serve
    assert result.returncode == 2
    assert "logging.level" in result.stderr


def test_serve_on_a_port_in_use_exits_1_naming_the_address(tmp_path):
    """One line naming server.host/server.port and why, not a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(["serve", "--port", str(port), "--db-path", str(tmp_path / "x.db")],
                     tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"server.host/server.port 127.0.0.1:{port}: cannot listen there" in output, output
    assert "in use" in output and "Traceback" not in output, output


def test_missing_config_file_exits_2(tmp_path):
    result = run(["check-config", "-c", str(tmp_path / "absent.toml")], tmp_path)
    assert result.returncode == 2
    assert "absent.toml: config file not found" in result.stderr


def make_db(path: Path, rows: int = 1000) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO jobs (payload) VALUES (?)", [(f"p{i}",) for i in range(rows)])
    conn.execute("COMMIT")
    conn.close()


def test_backup_copies_the_database(tmp_path):
    make_db(tmp_path / "live.db")
    dest = tmp_path / "backups" / "copy.db"
    dest.parent.mkdir()
    result = run(["backup", str(dest), "--db-path", "live.db"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "copy.db" in result.stdout
    conn = sqlite3.connect(dest)
    assert conn.execute("SELECT count(*), max(payload) FROM jobs").fetchone() == (1000, "p999")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.db"]  # no leftovers


def test_backup_uses_db_path_from_the_config(tmp_path):
    make_db(tmp_path / "configured.db", rows=3)
    (tmp_path / "mininq.toml").write_text('[server]\ndb_path = "configured.db"\n')
    result = run(["backup", "copy.db"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sqlite3.connect(tmp_path / "copy.db").execute(
        "SELECT count(*) FROM jobs"
    ).fetchone() == (3,)


@pytest.mark.parametrize(
    ("setup", "dest", "message"),
    [
        ("existing", "copy.db", "copy.db already exists"),
        ("none", "copy.db", "live.db does not exist"),
        ("live", "no/such/dir/copy.db", "does not exist"),
        ("not-a-db", "copy.db", "file is not a database"),
    ],
)
def test_backup_failures_exit_1(tmp_path, setup, dest, message):
    if setup in ("existing", "live"):
        make_db(tmp_path / "live.db")
    if setup == "existing":
        (tmp_path / "copy.db").write_text("keep me")
    if setup == "not-a-db":
        (tmp_path / "live.db").write_text("this is not SQLite" * 100)
    result = run(["backup", dest, "--db-path", "live.db"], tmp_path)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("mininq: backup failed:"), result.stderr
    assert message in result.stderr
    if setup == "existing":
        assert (tmp_path / "copy.db").read_text() == "keep me"
    if setup == "none":
        assert not (tmp_path / "live.db").exists()  # never creates an empty database
    assert not list(tmp_path.glob(".copy.db.partial-*"))
