"""`python -m bench` (`just bench`): ceilings, the huey peer and mininq, one table.

A full run takes several minutes and rewrites docs/benchmarks.md; ``--smoke``
runs every workload small (seconds) and writes only where ``--out`` says.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import ceilings, huey_peer, mininq_runs, noisy, postgres
from bench import receiver as receiver_mod
from bench.common import REPO_ROOT
from bench.report import machine, render_doc, source_revision, table
from bench.rows import build_rows
from bench.settings import Settings, make_settings

WORKLOADS = ("ceilings", "huey", "W1", "W1b", "W2", "delayed", "scale", "resources",
             "noisy", "postgres")
DOC_PATH = Path(REPO_ROOT, "docs", "benchmarks.md")


def profiled(server: mininq_runs.MininqServer, s: Settings, label: str):  # type: ignore[no-untyped-def]
    """py-spy on every mininq process for the block when --profile is given."""
    if s.profile_dir is None:
        return contextlib.nullcontext()
    return mininq_runs.Profiler(server, s.profile_dir, label)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Step:
    name: str
    groups: set[str]  # the --only names that select it
    fn: Callable[[], dict]


class Run:
    """Runs workloads, keeping each one's figures or its error."""

    def __init__(self, only: set[str]) -> None:
        self.only = only
        self.results: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.skipped: dict[str, str] = {}

    def wants(self, name: str) -> bool:
        return name in self.only

    def step(self, name: str, fn: Callable[[], dict]) -> dict | None:
        log(f"{name} ...")
        t0 = time.monotonic()
        try:
            self.results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one broken workload must not hide the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {self.errors[name]}\n{traceback.format_exc()}")
            return None
        log(f"{name} done in {time.monotonic() - t0:.1f} s: {self.results[name]}")
        problems = _problems(self.results[name])
        if problems:
            self.errors[name] = "; ".join(problems)
            tail = self.results[name].pop("log_tail", None)
            if tail:
                self.errors[name] += f"\n--- end of mininq's log ---\n{tail}"
        return self.results[name]


def _problems(result: object) -> list[str]:
    """Every "problem" a workload reported, however deep in its result."""
    if isinstance(result, dict):
        found = [result["problem"]] if result.get("problem") else []
        return found + [p for v in result.values() for p in _problems(v)]
    if isinstance(result, list):
        return [p for v in result for p in _problems(v)]
    return []


LOG_DIR: Path | None = None  # where full runs keep each server's log


def with_server(tmp: str, name: str, fn: Callable[[mininq_runs.MininqServer], dict]) -> dict:
    """Run fn against a fresh mininq in its own directory; stop it after.

    A failure carries the end of the server's log; full runs keep every log.
    """
    server = mininq_runs.start_server(os.path.join(tmp, name))
    try:
        out = fn(server)
        out["server"] = ("dist/mininq serve" if server.command[0].endswith("dist/mininq")
                         else "python -m mininq serve")
        if _problems(out):
            out["log_tail"] = Path(server.log_path).read_text(errors="replace")[-3000:]
        return out
    except Exception as exc:
        tail = Path(server.log_path).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{exc}\n--- end of mininq's log ---\n{tail}") from exc
    finally:
        server.stop()
        if LOG_DIR is not None:
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server.log_path, LOG_DIR / f"{name}.log")


def plan(rcv: receiver_mod.Receiver, s: Settings, tmp: str) -> list[Step]:
    """Every step in running order: each ceiling and huey figure is measured next
    to the mininq figure it is compared with, so that a machine whose load
    drifts during the run skews the ratios less."""

    def w1(server: mininq_runs.MininqServer) -> dict:
        time.sleep(min(2.0, s.idle_s))  # let start-up work settle before measuring idle
        idle = mininq_runs.idle_resources(server, s.idle_s)
        with profiled(server, s, "w1"):
            out = mininq_runs.throughput(server, rcv, "w1", s.jobs)
        out["idle"] = idle
        out["rss_after_bytes"] = server.rss_bytes()
        out["pss_after_bytes"] = server.pss_bytes()
        out["paused"] = mininq_runs.enqueue_only(server, rcv, "w1-paused", s.jobs)
        return out

    def w1b(server: mininq_runs.MininqServer) -> dict:
        with profiled(server, s, "w1b"):
            out = mininq_runs.throughput(server, rcv, "w1b", s.jobs, batch=100)
        out["paused"] = mininq_runs.enqueue_only(server, rcv, "w1b-paused", s.jobs, batch=100)
        return out

    def w2(server: mininq_runs.MininqServer) -> dict:
        with profiled(server, s, "w2"):
            return {"phases": mininq_runs.latency(server, rcv, s.w2_phases)}

    def scale(server: mininq_runs.MininqServer) -> dict:
        fill = mininq_runs.fill_backlog(server, rcv, s.scale_jobs)
        log(f"backlog of {fill['jobs']} jobs inserted in {fill['seconds']:.1f} s")
        out = mininq_runs.throughput(server, rcv, "w1", s.jobs)
        listing = mininq_runs.list_latency(server, s.list_requests)
        return {"fill": fill, "w1": out, "list": listing, "rss_bytes": server.rss_bytes()}

    def pg_w1(nodes: list[mininq_runs.MininqServer]) -> dict:
        with profiled(nodes[0], s, f"pg-w1x{len(nodes)}"):
            return postgres.throughput(nodes, rcv, "w1", s.jobs)

    def pg_w2(nodes: list[mininq_runs.MininqServer]) -> dict:
        return {"phases": mininq_runs.latency(nodes[0], rcv, s.w2_phases)}

    return [
        Step("ceiling.loopback", {"ceilings"},
             lambda: ceilings.loopback(rcv, s.ceiling_s, s.ceiling_requests)),
        Step("ceiling.nginx", {"ceilings"},
             lambda: {"rate": ceilings.nginx_reference(s.ceiling_s)}),
        Step("ceiling.sqlite", {"ceilings"}, lambda: ceilings.sqlite_alone(tmp, s.ceiling_s / 2)),
        Step("ceiling.sanic", {"ceilings"}, lambda: ceilings.sanic_alone(s.ceiling_requests)),
        Step("mininq.w1", {"W1", "resources"}, lambda: with_server(tmp, "w1", w1)),
        Step("huey.w1", {"huey"}, lambda: huey_peer.run_w1(rcv, tmp, s.jobs)),
        Step("ceiling.webhook", {"ceilings"},
             lambda: ceilings.webhook_client(rcv.url, s.ceiling_requests)),
        Step("mininq.w1b", {"W1b"}, lambda: with_server(tmp, "w1b", w1b)),
        Step("huey.w2", {"huey"}, lambda: {"phases": huey_peer.run_w2(rcv, tmp, s.w2_phases)}),
        Step("mininq.w2", {"W2"}, lambda: with_server(tmp, "w2", w2)),
        Step("mininq.delayed", {"delayed"}, lambda: with_server(
            tmp, "delayed",
            lambda srv: mininq_runs.delayed(srv, rcv, s.delayed_jobs, s.delayed_spread_s))),
        Step("mininq.scale", {"scale"}, lambda: with_server(tmp, "scale", scale)),
        Step("mininq.noisy", {"noisy"},
             lambda: noisy.run_mininq(tmp, s.noisy_jobs, s.noisy_window_s)),
        Step("huey.noisy", {"noisy", "huey"},
             lambda: noisy.run_huey(tmp, s.noisy_jobs, s.noisy_window_s)),
        # Last: PostgreSQL shares the cores with everything measured before.
        Step("postgres.w1", {"postgres"},
             lambda: postgres.with_nodes(tmp, "pg-w1", 1, pg_w1)),
        Step("postgres.w2", {"postgres"},
             lambda: postgres.with_nodes(tmp, "pg-w2", 1, pg_w2)),
        Step("postgres.w1x2", {"postgres"},
             lambda: postgres.with_nodes(tmp, "pg-w1x2", 2, pg_w1)),
    ]


def huey_missing() -> str | None:
    if importlib.util.find_spec("huey") is None or importlib.util.find_spec("urllib3") is None:
        return "huey or urllib3 not installed (pip install -e .[bench])"
    return None


def _loadavg() -> str:
    """The 1-minute load average: how busy the machine was besides the bench."""
    return f"{os.getloadavg()[0]:.2f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="every workload tiny (seconds); docs untouched unless --out")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--jobs", type=int, default=0, help="W1/W1b/huey jobs (20000)")
    parser.add_argument("--scale-jobs", type=int, default=0,
                        help="pending jobs for the scale workload (1000000)")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="record py-spy flame graphs of mininq's processes during W1, "
                             "W1b and W2 into DIR")
    parser.add_argument("--from-source", action="store_true",
                        help="run `python -m mininq` even when dist/mininq exists")
    parser.add_argument("--out", default=None,
                        help="Markdown report path (default: docs/benchmarks.md on a "
                             "full run of every workload)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = {w.strip() for w in args.only.split(",") if w.strip()} or set(WORKLOADS)
    unknown = only - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; choose from {WORKLOADS}")
    s = make_settings(args)
    run = Run(only)
    global LOG_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if not s.smoke:
        LOG_DIR = Path(REPO_ROOT, "bench", "results", f"{stamp}-logs")
    mininq_runs.FROM_SOURCE = args.from_source
    stale = mininq_runs.stale_build_warning()
    if stale:
        log(f"WARNING: {stale}")
    info = machine()
    info["load"] = _loadavg()
    info["revision"] = source_revision(REPO_ROOT)
    if info["mininq"] == "not installed":
        try:
            import mininq

            info["mininq"] = mininq.__version__
        except ImportError:
            info["mininq"] = "not importable"
    rcv = receiver_mod.start()
    with tempfile.TemporaryDirectory(prefix="mininq-bench-") as tmp:
        try:
            missing = huey_missing()
            if missing and run.wants("huey"):
                run.skipped["huey"] = missing
                log(f"huey skipped: {missing}")
            no_pg = postgres.unavailable() if run.wants("postgres") else None
            if no_pg:
                run.skipped["postgres"] = no_pg
                log(f"postgres skipped: {no_pg}")
            for step in plan(rcv, s, tmp):
                if step.groups & run.only and not (missing and "huey" in step.groups) \
                        and not (no_pg and "postgres" in step.groups):
                    run.step(step.name, step.fn)
                    rcv.reset()
        finally:
            rcv.stop()
    info["load"] = f"{info['load']} at the start, {_loadavg()} at the end"
    rows = build_rows(run.results, s, run.errors)
    server = next((r["server"] for r in run.results.values() if "server" in r), "")
    print(table(rows))
    for name, msg in run.skipped.items():
        print(f"SKIPPED {name}: {msg}")
    for name, msg in run.errors.items():
        print(f"FAILED {name}: {msg}")
    out = args.out
    if out is None and not s.smoke and only == set(WORKLOADS):
        out = str(DOC_PATH)
    if out:
        Path(out).write_text(render_doc(rows, info, s, run.errors, server))
        log(f"wrote {out}")
    if not s.smoke:
        results_dir = Path(REPO_ROOT, "bench", "results")
        results_dir.mkdir(exist_ok=True)
        raw = results_dir / f"{stamp}.json"
        raw.write_text(json.dumps({"machine": info, "settings": asdict(s),
                                   "results": run.results, "errors": run.errors}, indent=1))
        log(f"raw figures in {raw}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
