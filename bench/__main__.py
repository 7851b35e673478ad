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

from bench import ceilings, huey_peer, mininq_runs
from bench import receiver as receiver_mod
from bench.common import REPO_ROOT
from bench.report import Row, machine, machine_lines, table

WORKLOADS = ("ceilings", "huey", "W1", "W1b", "W2", "delayed", "scale", "resources")
DOC_PATH = Path(REPO_ROOT, "docs", "benchmarks.md")


@dataclass
class Settings:
    smoke: bool
    jobs: int
    scale_jobs: int
    w2_phases: list[tuple[float, float]]
    delayed_jobs: int
    delayed_spread_s: float
    idle_s: float
    ceiling_s: float
    ceiling_requests: int
    list_requests: int
    profile_dir: str | None = None


def make_settings(args: argparse.Namespace) -> Settings:
    if args.smoke:
        return Settings(True, args.jobs or 300, args.scale_jobs or 2000,
                        [(50, 1), (200, 1)], 100, 1.0, 1.0, 1.0, 1000, 20, args.profile)
    return Settings(False, args.jobs or 20_000, args.scale_jobs or 1_000_000,
                    [(50, 10), (500, 10)], 1000, 10.0, 10.0, 5.0, 20_000, 200, args.profile)


def profiled(server: mininq_runs.MininqServer, s: Settings, label: str):  # type: ignore[no-untyped-def]
    """py-spy on every mininq process for the block when --profile is given."""
    if s.profile_dir is None:
        return contextlib.nullcontext()
    return mininq_runs.Profiler(server, s.profile_dir, label)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


def run_ceilings(run: Run, rcv: receiver_mod.Receiver, s: Settings, tmp: str) -> None:
    run.step("ceiling.loopback", lambda: ceilings.loopback(rcv, s.ceiling_s, s.ceiling_requests))
    run.step("ceiling.nginx", lambda: {"rate": ceilings.nginx_reference(s.ceiling_s)})
    run.step("ceiling.webhook", lambda: ceilings.webhook_client(rcv.url, s.ceiling_requests))
    rcv.reset()
    run.step("ceiling.sanic", lambda: ceilings.sanic_alone(s.ceiling_requests))
    run.step("ceiling.sqlite", lambda: ceilings.sqlite_alone(tmp, s.ceiling_s / 2))


def run_huey(run: Run, rcv: receiver_mod.Receiver, s: Settings, tmp: str) -> None:
    if importlib.util.find_spec("huey") is None or importlib.util.find_spec("urllib3") is None:
        run.skipped["huey"] = "huey or urllib3 not installed (pip install -e .[bench])"
        log(f"huey skipped: {run.skipped['huey']}")
        return
    run.step("huey.w1", lambda: huey_peer.run_w1(rcv, tmp, s.jobs))
    run.step("huey.w2", lambda: {"phases": huey_peer.run_w2(rcv, tmp, s.w2_phases)})


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


def run_mininq(run: Run, rcv: receiver_mod.Receiver, s: Settings, tmp: str) -> None:
    if run.wants("W1") or run.wants("resources"):
        def w1(server: mininq_runs.MininqServer) -> dict:
            time.sleep(min(2.0, s.idle_s))  # let start-up work settle before measuring idle
            idle = mininq_runs.idle_resources(server, s.idle_s)
            with profiled(server, s, "w1"):
                out = mininq_runs.throughput(server, rcv, "w1", s.jobs)
            out["idle"] = idle
            out["rss_after_bytes"] = server.rss_bytes()
            out["pss_after_bytes"] = server.pss_bytes()
            return out
        run.step("mininq.w1", lambda: with_server(tmp, "w1", w1))
    if run.wants("W1b"):
        def w1b(server: mininq_runs.MininqServer) -> dict:
            with profiled(server, s, "w1b"):
                return mininq_runs.throughput(server, rcv, "w1b", s.jobs, batch=100)
        run.step("mininq.w1b", lambda: with_server(tmp, "w1b", w1b))
    if run.wants("W2"):
        def w2(server: mininq_runs.MininqServer) -> dict:
            with profiled(server, s, "w2"):
                return {"phases": mininq_runs.latency(server, rcv, s.w2_phases)}
        run.step("mininq.w2", lambda: with_server(tmp, "w2", w2))
    if run.wants("delayed"):
        run.step("mininq.delayed", lambda: with_server(
            tmp, "delayed",
            lambda srv: mininq_runs.delayed(srv, rcv, s.delayed_jobs, s.delayed_spread_s)))
    if run.wants("scale"):
        def scale(server: mininq_runs.MininqServer) -> dict:
            fill = mininq_runs.fill_backlog(server, rcv, s.scale_jobs)
            log(f"backlog of {fill['jobs']} jobs inserted in {fill['seconds']:.1f} s")
            w1 = mininq_runs.throughput(server, rcv, "w1", s.jobs)
            listing = mininq_runs.list_latency(server, s.list_requests)
            return {"fill": fill, "w1": w1, "list": listing,
                    "rss_bytes": server.rss_bytes()}
        run.step("mininq.scale", lambda: with_server(tmp, "scale", scale))


def build_rows(res: dict[str, dict], s: Settings, errors: dict[str, str]) -> list[Row]:
    """Every figure of the workloads that ran (or failed), with its comparisons."""
    def get(key: str, *path: object) -> float | None:
        node: object = res.get(key)
        for p in path:
            if node is None:
                return None
            try:
                node = node[p]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                return None
        return node  # type: ignore[return-value]

    loop_tool = (res.get("ceiling.loopback") or {}).get("tool", "")
    sanic = get("ceiling.sanic", "rate")
    webhook = get("ceiling.webhook", "rate")
    sql_rows = get("ceiling.sqlite", "rows_per_s_tx100")
    h_enq, h_e2e = get("huey.w1", "enqueue_rate"), get("huey.w1", "e2e_rate")
    lo, hi = (f"{p[0]:g}/s" for p in s.w2_phases)
    h_w2 = [[get("huey.w2", "phases", i, k) for k in ("p50_ms", "p99_ms")] for i in range(2)]
    m_w2 = [[get("mininq.w2", "phases", i, k) for k in ("p50_ms", "p99_ms")] for i in range(2)]
    w1_enq, w1_e2e = get("mininq.w1", "enqueue_rate"), get("mininq.w1", "e2e_rate")
    scale_n = get("mininq.scale", "fill", "jobs") or s.scale_jobs

    def below(limit: float) -> Callable[[Row], bool]:
        return lambda r: r.value <= limit and (r.huey is None or r.value < r.huey)

    rows = [
        Row("ceiling", f"loopback HTTP to the receiver ({loop_tool})",
            get("ceiling.loopback", "rate"), "req/s"),
        Row("ceiling", "loopback HTTP to nginx, reference (wrk -t1 -c32)",
            get("ceiling.nginx", "rate"), "req/s"),
        Row("ceiling", "webhook client alone (aiohttp, 64 in flight, uvloop)", webhook,
            "req/s"),
        Row("ceiling", "Sanic alone (1 worker, POST JSON → 201, 32 connections)", sanic,
            "req/s"),
        Row("ceiling", "SQLite alone: commits of one job row", get("ceiling.sqlite",
                                                                 "commits_per_s"), "commits/s"),
        Row("ceiling", "SQLite alone: job rows in transactions of 100", sql_rows, "rows/s"),
        Row("huey", f"W1 enqueue, {s.jobs:,} tasks (1 producer)", h_enq, "jobs/s"),
        Row("huey", "W1 end-to-end", h_e2e, "jobs/s"),
        Row("huey", f"W2 p50 at {lo}", h_w2[0][0], "ms"),
        Row("huey", f"W2 p99 at {lo}", h_w2[0][1], "ms"),
        Row("huey", f"W2 p50 at {hi}", h_w2[1][0], "ms"),
        Row("huey", f"W2 p99 at {hi}", h_w2[1][1], "ms"),
        Row("W1", f"enqueue, {s.jobs:,} single POSTs", w1_enq, "jobs/s", sanic,
            "Sanic alone", h_enq, "≥ 50 % of Sanic alone", lambda r: r.vs_ceiling >= 0.5),
        Row("W1", "end-to-end", w1_e2e, "jobs/s", webhook, "webhook client", h_e2e,
            "≥ 2× huey (goal 3×)", lambda r: r.vs_huey >= 2),
        Row("W1b", "enqueue, /jobs/batch of 100", get("mininq.w1b", "enqueue_rate"),
            "jobs/s", sql_rows, "SQLite tx of 100", h_enq, "≥ 20 % of SQLite tx of 100",
            lambda r: r.vs_ceiling >= 0.2),
        Row("W1b", "end-to-end", get("mininq.w1b", "e2e_rate"), "jobs/s", webhook,
            "webhook client", h_e2e, "≥ 4× huey, ≥ 50 % of webhook client",
            lambda r: r.vs_huey >= 4 and r.vs_ceiling >= 0.5),
        Row("W2", f"201 → arrival p50 at {lo}", m_w2[0][0], "ms", huey=h_w2[0][0],
            target="≤ 2 ms, below huey", check=below(2)),
        Row("W2", f"201 → arrival p99 at {lo}", m_w2[0][1], "ms", huey=h_w2[0][1],
            target="≤ 10 ms, below huey", check=below(10)),
        Row("W2", f"201 → arrival p50 at {hi}", m_w2[1][0], "ms", huey=h_w2[1][0],
            target="below huey", check=below(float("inf"))),
        Row("W2", f"201 → arrival p99 at {hi}", m_w2[1][1], "ms", huey=h_w2[1][1],
            target="≤ 20 ms, below huey", check=below(20)),
        Row("delayed", f"lateness p50, {s.delayed_jobs:,} jobs over {s.delayed_spread_s:g} s",
            get("mininq.delayed", "p50_ms"), "ms"),
        Row("delayed", "lateness p99", get("mininq.delayed", "p99_ms"), "ms",
            target="≤ 10 ms", check=lambda r: r.value <= 10),
        Row("scale", f"insert {scale_n:,} pending jobs (/jobs/batch of 1000)",
            get("mininq.scale", "fill", "seconds"), "s"),
        Row("scale", "insert rate", get("mininq.scale", "fill", "rate"), "jobs/s"),
        Row("scale", f"W1 enqueue beside {scale_n:,} pending",
            get("mininq.scale", "w1", "enqueue_rate"), "jobs/s", w1_enq, "empty database",
            target="≥ 80 % of empty", check=lambda r: r.vs_ceiling >= 0.8),
        Row("scale", f"W1 end-to-end beside {scale_n:,} pending",
            get("mininq.scale", "w1", "e2e_rate"), "jobs/s", w1_e2e, "empty database",
            target="≥ 80 % of empty", check=lambda r: r.vs_ceiling >= 0.8),
        Row("scale", "GET /jobs?status=pending&limit=50 p50", get("mininq.scale", "list",
                                                                  "p50_ms"), "ms",
            target="≤ 20 ms", check=lambda r: r.value <= 20),
        Row("scale", "GET /jobs?status=pending&limit=50 p99", get("mininq.scale", "list",
                                                                  "p99_ms"), "ms",
            target="≤ 20 ms", check=lambda r: r.value <= 20),
        Row("resources", f"idle CPU, all processes, over {s.idle_s:g} s",
            get("mininq.w1", "idle", "cpu_percent"), "%", target="≤ 1 % of a core",
            check=lambda r: r.value <= 1.0),
        Row("resources", "RSS idle, all processes", get("mininq.w1", "idle", "rss_bytes"),
            "MB", target="≤ 150 MB", check=lambda r: r.value <= 150e6),
        Row("resources", "PSS idle, all processes (shared pages split)",
            get("mininq.w1", "idle", "pss_bytes"), "MB"),
        Row("resources", "RSS right after W1, all processes",
            get("mininq.w1", "rss_after_bytes"), "MB", target="≤ 300 MB",
            check=lambda r: r.value <= 300e6),
        Row("resources", "PSS right after W1, all processes",
            get("mininq.w1", "pss_after_bytes"), "MB"),
    ]
    keys = {"ceiling": None, "huey": None, "W1": "mininq.w1", "W1b": "mininq.w1b",
            "W2": "mininq.w2", "delayed": "mininq.delayed", "scale": "mininq.scale",
            "resources": "mininq.w1"}
    kept = []
    for r in rows:
        key = keys[r.workload]
        if key is None:
            if r.value is not None:
                kept.append(r)
        elif key in errors:
            r.failed = True
            kept.append(r)
        elif key in res:
            kept.append(r)
    return kept


METHOD = """\
## How it is measured

- **Receiver.** Every system delivers to the same receiver: a minimal HTTP/1.1
  keep-alive server of our own (`bench/receiver.py`, raw asyncio protocol on
  uvloop) in its own process. It records `(X-Mininq-Job-Id, time.time())` for
  each delivery, which the latency workloads need and which tells the
  throughput workloads when the last delivery arrived; nginx with
  `access_log off` can tell neither. Its loopback ceiling is measured with wrk
  in the same run, beside nginx's (one worker), to show it is not what bounds
  the figures.
- **Load client.** `bench/loadclient.py`, a raw asyncio HTTP/1.1 client in its
  own process (so its CPU is not counted as the server's), 32 keep-alive
  connections. The Sanic-alone ceiling is driven by the same client and body as
  W1.
- **mininq** is started as users start it (`dist/mininq serve` when built, else
  `python -m mininq serve`) in a fresh temp dir and database per workload, log
  level info (one line per delivery) to a file. Each workload's queue is
  created with `max_concurrency` 64 (= `worker.concurrency`).
- **huey** 32-thread consumer (`worker_type="thread"`, default polling) on
  SqliteHuey with WAL and `synchronous=NORMAL`; a producer process enqueues
  in-process; each task POSTs the same payload through a per-thread urllib3
  PoolManager.
- **W1**: jobs POSTed one per request; enqueue rate = jobs / time from the
  first POST to the last 201; end-to-end = jobs / time from the first POST to
  the last arrival. **W1b**: the same through `/jobs/batch`, 100 per request.
- **W2**: open loop at each rate; latency from the client reading the 201 (for
  huey: the enqueue call returning) to the arrival; an arrival before the 201
  was read counts as 0 ms. **delayed**: lateness = arrival − `run_at`.
- **scale**: the backlog goes into a paused queue through `/jobs/batch`
  (1000 per request, 4 connections), then W1 runs in another queue, then
  `GET /jobs?status=pending&limit=50` is timed sequentially.
- **resources**: utime+stime and RSS from `/proc` for the server process and
  all its descendants, idle after start-up, and RSS right after W1.
- The machine's cores are shared by the client, the receiver and mininq's
  processes: the ratios to the ceilings, measured in the same run, are what
  carry over to other machines.
"""


def render_doc(rows: list[Row], info: dict[str, str], s: Settings, errors: dict[str, str],
               server: str) -> str:
    parts = [
        "# Benchmarks",
        "",
        ("Written by `just bench` (`python -m bench`); reproduce with `just bench` on a "
         "checkout with the project's dependencies plus `pip install -e .[bench]` "
         "(huey, urllib3); Debian's `wrk` and `nginx` are used when installed."),
        "",
        "## Machine",
        "",
        machine_lines(info),
        f"- mininq {info['mininq']}, started as `{server}`" if server else
        f"- mininq {info['mininq']}",
        "",
        "## Results" + (" (smoke run: tiny sizes, figures not meaningful)" if s.smoke else ""),
        "",
        table(rows),
        "",
    ]
    if errors:
        parts += ["## Workloads that failed", ""]
        parts += [f"- `{name}`: {msg}" for name, msg in errors.items()]
        parts.append("")
    parts.append(METHOD)
    return "\n".join(parts)


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
    if info["mininq"] == "not installed":
        try:
            import mininq

            info["mininq"] = mininq.__version__
        except ImportError:
            info["mininq"] = "not importable"
    rcv = receiver_mod.start()
    with tempfile.TemporaryDirectory(prefix="mininq-bench-") as tmp:
        try:
            if run.wants("ceilings"):
                run_ceilings(run, rcv, s, tmp)
            if run.wants("huey"):
                run_huey(run, rcv, s, tmp)
            run_mininq(run, rcv, s, tmp)
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
