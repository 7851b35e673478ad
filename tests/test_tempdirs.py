"""Temp folders of stopped instances are removed at start-up; live ones never.

From source, with folders made to look like a dead instance's, a live
instance's and others that are not ours; and against the one-file executable
(MININQ_TEST_BINARY), with the real `_MEI*` folder a `kill -9` leaves.
Each server gets TMPDIR=<workdir>/tmp (see MininqServer.environment for the
executable; set here for source runs), so nothing of the machine's /tmp is
touched.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import MakeServer
from support import MininqServer
from support.server import binary_under_test

OLD = time.time() - 3600


def _folder(tmp: Path, name: str, old: bool = True) -> Path:
    path = tmp / name
    (path / "lib").mkdir(parents=True)
    (path / "lib" / "libpython.so").write_bytes(b"\0" * 4096)
    if old:
        for p in (path / "lib" / "libpython.so", path / "lib", path):
            os.utime(p, (OLD, OLD))
    return path


def _age(folder: Path) -> None:
    """Make the folder and everything in it look an hour old."""
    for p in [*folder.rglob("*"), folder]:
        os.utime(p, (OLD, OLD), follow_symlinks=False)


def _server(workdir: Path, tmp: Path) -> MininqServer:
    return MininqServer(workdir, env={"TMPDIR": str(tmp)})


def test_start_up_removes_what_stopped_instances_left(tmp_path: Path) -> None:
    if binary_under_test():
        pytest.skip("from source only (the executable's own test is below)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = [_folder(tmp, "_MEIdead01"), _folder(tmp, "_MEIdead02")]
    fresh = _folder(tmp, "_MEIfresh1", old=False)  # may be unpacking right now
    used = _folder(tmp, "_MEIinuse1")  # a live process works in it
    foreign = _folder(tmp, "pymp-notour01")  # multiprocessing's, another program's: not ours
    others = _folder(tmp, "_MEIother1")  # another user's
    os.chown(others, 65534, 65534)
    os.utime(others, (OLD, OLD))
    sleeper = subprocess.Popen(["sleep", "60"], cwd=used)
    first = _server(tmp_path / "first", tmp)
    try:
        first.start()
        remaining = {p.name for p in tmp.iterdir()}
        assert not {p.name for p in dead} & remaining, remaining
        assert {fresh.name, used.name, foreign.name, others.name} <= remaining, remaining
        assert "removed temporary folders left by stopped instances" in first.log_text()

        # The state manager's socket is abstract: running and killing make no folder.
        second = _server(tmp_path / "second", tmp).start()
        first.kill9()
        first.start()
        assert second.stop() == 0
        assert first.stop() == 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert {p.name for p in tmp.iterdir()} == {fresh.name, used.name, foreign.name, others.name}


@pytest.mark.skipif(not binary_under_test(), reason="needs MININQ_TEST_BINARY (dist/mininq)")
def test_executable_removes_unpacking_folders_of_killed_instances(make_server: MakeServer) -> None:
    srv = make_server()  # TMPDIR is <workdir>/tmp for the executable
    tmp = srv.workdir / "tmp"
    [first] = [p for p in tmp.iterdir() if p.name.startswith("_MEI")]
    assert not [p for p in tmp.iterdir() if p.name.startswith("pymp-")], list(tmp.iterdir())
    srv.kill9()
    assert first.is_dir()
    _age(first)  # as if the restart came a while later
    srv.start()
    assert not first.exists(), "the killed instance's unpacking folder is still there"
    [second] = [p for p in tmp.iterdir() if p.name.startswith("_MEI")]

    # Another live instance on the same temp folder leaves ours alone, however old.
    _age(second)
    other = MininqServer(srv.workdir.parent / "other", env={"TMPDIR": str(tmp)}).start()
    assert second.is_dir(), "a live instance's unpacking folder was removed"
    assert other.stop() == 0
    assert srv.stop() == 0
    assert list(tmp.iterdir()) == [], list(tmp.iterdir())
