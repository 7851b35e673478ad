"""The result table and docs/benchmarks.md: pure formatting, no measuring."""

from __future__ import annotations

import platform
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.settings import Settings


@dataclass
class Row:
    """One figure, with what it is compared against and whether it meets its target."""

    workload: str
    figure: str
    value: float | None
    unit: str
    ceiling: float | None = None
    ceiling_name: str = ""
    huey: float | None = None
    target: str = ""
    check: Callable[[Row], bool] | None = field(default=None, repr=False)
    failed: bool = False

    @property
    def vs_ceiling(self) -> float | None:
        if self.value is None or not self.ceiling:
            return None
        return self.value / self.ceiling

    @property
    def vs_huey(self) -> float | None:
        if self.value is None or not self.huey:
            return None
        return self.value / self.huey

    @property
    def result(self) -> str:
        if self.failed:
            return "failed"
        if self.check is None:
            return ""
        if self.value is None:
            return "miss"
        try:
            return "pass" if self.check(self) else "miss"
        except TypeError:  # a comparison needed a figure that was not measured
            return "n/a"


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "MB":
        return f"{value / 1e6:,.0f} MB"
    if unit == "%":
        return f"{value:.2f} %"
    if unit in ("ms", "s"):
        return f"{value:,.1f} {unit}" if value >= 10 else f"{value:,.2f} {unit}"
    return f"{value:,.0f} {unit}"


def fmt_ratio(ratio: float | None, percent: bool) -> str:
    if ratio is None:
        return ""
    return f"{ratio * 100:.0f} %" if percent else f"{ratio:.2f}×"


HEADER = ("Workload", "Figure", "Value", "Ceiling", "vs ceiling", "vs huey", "Target",
          "Result")


def table(rows: list[Row]) -> str:
    """A Markdown table, readable as plain text too."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        ceiling = ""
        if r.ceiling is not None:
            ceiling = fmt_value(r.ceiling, r.unit) + (f" ({r.ceiling_name})" if r.ceiling_name
                                                      else "")
        cells = (r.workload, r.figure, fmt_value(r.value, r.unit), ceiling,
                 fmt_ratio(r.vs_ceiling, True), fmt_ratio(r.vs_huey, False), r.target,
                 r.result)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def source_revision(repo: str) -> str:
    """The git commit measured, and whether mininq/ had uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mininq"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes in mininq/" if dirty else "")


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "sanic": _version("sanic"),
        "aiohttp": _version("aiohttp"),
        "aiosqlite": _version("aiosqlite"),
        "uvloop": _version("uvloop"),
        "huey": _version("huey"),
        "mininq": _version("mininq"),
    }


def machine_lines(info: dict[str, str]) -> str:
    return "\n".join([
        f"- Date: {info['date']}",
        f"- CPU: {info['cpu']}, {info['cores']} cores (client, receiver and server share them)",
        f"- Load average (1 min): {info.get('load', 'unknown')}",
        f"- Linux {info['kernel']}, Python {info['python']}, SQLite {info['sqlite']}",
        (f"- Sanic {info['sanic']}, aiohttp {info['aiohttp']}, "
         f"aiosqlite {info['aiosqlite']}, uvloop {info['uvloop']}, huey {info['huey']}"),
    ])


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
  connections; its own rate against the receiver is a row of the table. The
  Sanic-alone ceiling is driven by the same client and body as W1.
- **Webhook client ceiling**: aiohttp `ClientSession` with 64 requests in
  flight on uvloop, the loop policy mininq's engine and Sanic use, POSTing the
  same payload and `X-Mininq-*` headers to the receiver.
- **SQLite ceiling**: Python's `sqlite3`, WAL, `synchronous=NORMAL`, a table
  with mininq's job columns, its primary key and one partial claim index.
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
  carry over to other machines. Each ceiling and huey figure is measured right
  next to the mininq figure it is compared with. A load average well above the
  core count (see Machine) means other work shared the cores: such a run's
  figures, and even its ratios, are noisy.
- Raw figures and every mininq log of a full run are kept in `bench/results/`
  (git-ignored). Options: `--only W1,W2,...` (of ceilings, huey, W1, W1b, W2,
  delayed, scale, resources), `--jobs N`, `--scale-jobs N`, `--from-source`
  (ignore `dist/mininq`), `--profile DIR` (py-spy flame graphs of every mininq
  process during W1, W1b and W2), `--smoke` (everything tiny, for CI),
  `--out PATH`.
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
        f"- mininq {info['mininq']} (git {info.get('revision', 'unknown')})"
        + (f", started as `{server}`" if server else ""),
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
