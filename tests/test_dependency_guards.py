"""Guards on the internals of our dependencies that mininq patches or reaches into.

mininq/sanic_fixes.py replaces or wraps methods of Sanic's WorkerManager and
the multiprocessing state manager Sanic starts; mininq/store/sqlite/connection.py
runs its batches through aiosqlite's private `Connection._execute` and
`Connection._conn`; the engine watch relies on how Sanic names a managed
process. None of that is a public API, so a new release may change it without
notice. Each guard below holds the SHA-256 of the source of one such function,
as installed when the code that depends on it was written and checked, and
compares it with the source of the version installed now (never a stand-in).

When a guard fails: read the new source of the function it names, re-check
what its `recheck` says, adjust mininq if needed, then add the new hash (print
every current hash with `python tests/test_dependency_guards.py`) and the
version to the guard, and widen the range in pyproject.toml.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import platform
import sys
import textwrap
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Guard:
    target: str  # "module:Qualified.name"
    dist: str  # the distribution that ships it ("python" for the standard library)
    recheck: str  # what mininq relies on there
    known: dict[str, str]  # source SHA-256 -> the versions it was checked on


SANIC_2512 = "sanic 25.12.0, 25.12.1"
AIOSQLITE_022 = "aiosqlite 0.20.0, 0.21.0, 0.22.0, 0.22.1"
PY_311 = "CPython 3.11.7"
# The release executable's interpreter (build/portable.sh runs these guards with it).
PY_311_PORTABLE = "CPython 3.11.2 with Debian bookworm's fixes (build/portable.sh)"

GUARDS = [
    # -- Sanic: mininq/sanic_fixes.py -----------------------------------------
    Guard(
        "sanic.worker.manager:WorkerManager.wait_for_ack",
        "sanic",
        "sanic_fixes._wait_for_ack replaces it with a copy that stops waiting once a "
        "shutdown was requested: port the changes into the copy, and check whether a "
        "SIGTERM during start-up still makes the original spin (then the copy is still needed)",
        {"efb563dc8d58fb89273139aec97569b582a9d81fb708d1d693b2794f1b384bb1": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager.shutdown_signal",
        "sanic",
        "sanic_fixes._deferred_shutdown_signal takes over the first signal (recorded, "
        "handled by the monitor loop) and calls this original for a second one: check it "
        "still shuts down right inside the signal handler, and still kills on a second signal",
        {"b118ad94d8ffc673da4f2b644588a31f3c84864e2cd6dedbe9c15f07c8ba94b2": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager._poll_monitor",
        "sanic",
        "sanic_fixes._patient_poll_monitor waits for a message before calling it and "
        "shuts down after it: check it still polls the monitor pipe once per call, "
        "returns a MonitorCycle, and that a None message still ends the monitor loop",
        {"854f6bc37e6768bcc021d072b38713da91c4230331739f3fb4bf0c42dd257415": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager.monitor",
        "sanic",
        "the loop around _poll_monitor: check it still calls _poll_monitor each cycle "
        "and joins the workers after a BREAK (the patched poll shuts down before that)",
        {"f31fb4f72b8aec388a55834391e708636cbe51e51ab64e57dac839adb7f205ed": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager.__init__",
        "sanic",
        "the patches use monitor_publisher, monitor_subscriber, _shutting_down and "
        "THRESHOLD of the manager: check they still exist and mean the same",
        {"4a80b4f848a9d76ce1d7c23a94e86b2a43a34c6c12fad34b59f8efb74cb80c34": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager.shutdown",
        "sanic",
        "called by sanic_fixes._shutdown_if_requested: check it still sets _shutting_down "
        "and tells every worker to stop",
        {"ec963589210f27734c5660f0e19883ece8bde9b4018049ae972fe48f717878fd": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager._all_workers_ack",
        "sanic",
        "called by sanic_fixes._wait_for_ack: check it still answers whether every worker "
        "reported ready",
        {"a91a9bc14c7e001bc7a1ca55ee40483d54162416b2c4ef8143d6f8d5763de989": SANIC_2512},
    ),
    Guard(
        "sanic.worker.manager:WorkerManager.kill",
        "sanic",
        "called by sanic_fixes._wait_for_ack after too many misses, as Sanic's own does",
        {"6f05c74653b721c41c9a8c54364efee02becb91853f713ee2952566de7597759": SANIC_2512},
    ),
    Guard(
        "sanic.mixins.startup:StartupMixin.serve",
        "sanic",
        "sanic_fixes.apply replaces the module-level name `Manager` that serve() calls to "
        "make the workers' state dict (now served from a thread: ThreadedStateManager); "
        "mininq.announce logs 'listening' from main_process_ready, which serve() must still "
        "trigger after binding the sockets",
        {"f09728b5fc6eafa6acf25f14bd0280fcd857bbca49b880c72b34f2fe2f9376c2": SANIC_2512},
    ),
    Guard(
        "sanic.worker.process:Worker.create_process",
        "sanic",
        "a managed process is named 'Sanic-<name>-<index>': mininq.engine.process."
        "ENGINE_PROCESS is that name, and the engine watch looks it up in app.m.workers",
        {"8cbc18a0b2a3687a49a3a1f2f292608ce9c2bf5e28cf9ceb4068a579e1163ef2": SANIC_2512},
    ),
    # -- the standard library: mininq/sanic_fixes.py --------------------------------
    Guard(
        "multiprocessing.managers:BaseManager.start",
        "python",
        "ThreadedStateManager.start does what this does with the server in a thread "
        "instead of a process (get_server, _address, _state): compare the two",
        {"9654ed935e6d5bde03cfdef1e764996a61f828c23419e82bcf8b7df1ed3b0d6c": PY_311},
    ),
    Guard(
        "multiprocessing.managers:Server.serve_forever",
        "python",
        "ThreadedStateManager.start runs Server.accepter in a thread and sets "
        "server.stop_event itself, as serve_forever does",
        {"a05183d00eee38b0c46b572b55ea523efddf8939f432a7ce73a68fbc0f35ac9a": PY_311},
    ),
    Guard(
        "multiprocessing.managers:Server.accepter",
        "python",
        "ThreadedStateManager.start runs it in a daemon thread",
        {"c65b26b406c64fb81489eab77d2ed517983d1cf7ad0f07c0fa052da3af823f19": PY_311},
    ),
    Guard(
        "multiprocessing.resource_tracker:ResourceTracker.ensure_running",
        "python",
        "sanic_fixes.skip_resource_tracker sets ResourceTracker._fd to /dev/null so that no "
        "tracker process is started: check an _fd that is set and alive still means 'running'",
        {
            "504ebf3836d867c91afbed0a001cfdea43b0d5adf44055872431272532224a73": PY_311,
            # Without 3.11.7's re-entrancy check (gh-109629); the _fd check is the same.
            "209591f12971cd7e8ba8130924bebc734686e51b36923b9d1c8108ccbfde6b28": PY_311_PORTABLE,
        },
    ),
    Guard(
        "multiprocessing.resource_tracker:ResourceTracker._check_alive",
        "python",
        "must still treat a successful write to _fd as a live tracker (writes to /dev/null "
        "always succeed)",
        {"ef22ecd2ca6cc0524e6c1bf189618be4d77e25c9a8acbd23c56aa1bad6f468ad": PY_311},
    ),
    # -- aiosqlite: mininq/store/sqlite/connection.py -------------------------------
    Guard(
        "aiosqlite.core:Connection._execute",
        "aiosqlite",
        "Database runs each batch as one call `_execute(fn, conn, ...)`: check it still "
        "runs fn(*args) in the connection's own thread and returns its result or raises "
        "its exception",
        {"87a8b35e8d1cbd10447bf3737a7f20cb857c0e973bcca3d7633bdf32a19245d2": AIOSQLITE_022},
    ),
    Guard(
        "aiosqlite.core:Connection._conn",
        "aiosqlite",
        "Database passes it to the functions run in the connection's thread: check it is "
        "still the open sqlite3.Connection",
        {"9e505e35c00f3eed8b5fe4ee5536503e06b010321d5f0161ce7ecdc9704459a7": AIOSQLITE_022},
    ),
    Guard(
        "aiosqlite.core:_connection_worker_thread",
        "aiosqlite",
        "check the connection's thread still runs queued functions one at a time, in "
        "order (the writer's batches and the exclusive checkpoint rely on it)",
        {
            "17e364bc23e051c3b645d00675390cffd7511c64a5f2f44d1f6ccc980461032b": "aiosqlite 0.22.1",
            "0e4ed3b17d218ae6166db97c538f7f50251be67b3cdbba1c723a9433f08b94a5": "aiosqlite 0.22.0",
        },
    ),
]


def resolve(target: str) -> object:
    module_name, qualname = target.split(":")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = inspect.getattr_static(obj, part)
    if isinstance(obj, property):
        obj = obj.fget
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    return obj


def source_hash(target: str) -> str:
    source = textwrap.dedent(inspect.getsource(resolve(target)))  # type: ignore[arg-type]
    return hashlib.sha256(source.encode()).hexdigest()


def installed_version(dist: str) -> str:
    if dist == "python":
        return f"{platform.python_implementation()} {platform.python_version()}"
    return f"{dist} {importlib.metadata.version(dist)}"


@pytest.mark.parametrize("guard", GUARDS, ids=lambda g: g.target)
def test_patched_and_reached_internals_are_as_written_for(guard: Guard) -> None:
    try:
        actual = source_hash(guard.target)
    except (AttributeError, ImportError, OSError, TypeError) as exc:
        pytest.fail(
            f"{guard.target} is gone or has no source in the installed "
            f"{installed_version(guard.dist)} ({exc!r}).\nmininq relies on it: {guard.recheck}."
        )
    if actual not in guard.known:
        checked = "; ".join(sorted(set(guard.known.values())))
        pytest.fail(
            f"{guard.target} changed: the installed {installed_version(guard.dist)} has "
            f"source sha256 {actual[:16]}…, mininq was written against {checked}.\n"
            f"Re-check: {guard.recheck}.\n"
            f"Then add {actual!r} to its guard in {__file__}."
        )


# Names mininq reads or replaces that are not functions (no source to hash).
ATTRIBUTES = [
    ("sanic.mixins.startup:Manager", "sanic_fixes.apply replaces it with state_manager"),
    ("sanic.worker.manager:WorkerManager.THRESHOLD", "sanic_fixes._wait_for_ack counts to it"),
    ("sanic.worker.process:Worker.WORKER_PREFIX", "the 'Sanic' of ENGINE_PROCESS's name"),
    ("multiprocessing.resource_tracker:_resource_tracker", "skip_resource_tracker sets its _fd"),
    ("multiprocessing.managers:State.STARTED", "ThreadedStateManager.start sets it"),
    ("logging:_srcfile", "mininq.logs._lean_records sets it to None (logging HOWTO, Optimization)"),
]


@pytest.mark.parametrize(("target", "why"), ATTRIBUTES, ids=[a[0] for a in ATTRIBUTES])
def test_reached_attributes_exist(target: str, why: str) -> None:
    try:
        value = resolve(target)
    except (AttributeError, ImportError) as exc:
        pytest.fail(f"{target} is gone ({exc!r}); mininq relies on it: {why}")
    if target.endswith("WORKER_PREFIX"):
        from mininq.engine.process import ENGINE, ENGINE_PROCESS

        assert ENGINE_PROCESS == f"{value}-{ENGINE}-0", (ENGINE_PROCESS, value)
    if target.endswith("_resource_tracker"):
        assert hasattr(value, "_fd"), f"{target} has no _fd any more; {why}"


def test_every_patched_sanic_method_is_guarded() -> None:
    """What sanic_fixes.apply() assigns to WorkerManager has a guard on the original."""
    import ast

    from mininq import sanic_fixes

    tree = ast.parse(inspect.getsource(sanic_fixes.apply))
    patched = {
        f"sanic.worker.manager:WorkerManager.{node.targets[0].attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Attribute)
        and isinstance(node.targets[0].value, ast.Name)
        and node.targets[0].value.id == "WorkerManager"
    }
    assert patched, "found no WorkerManager assignment in sanic_fixes.apply"
    assert patched <= {g.target for g in GUARDS}, patched - {g.target for g in GUARDS}


if __name__ == "__main__":
    for g in GUARDS:
        print(f"{source_hash(g.target)}  {installed_version(g.dist):24}  {g.target}")
    sys.exit(0)
