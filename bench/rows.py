"""From raw figures to table rows: each figure beside its ceiling, huey and target."""

from __future__ import annotations

from collections.abc import Callable

from bench.report import Row
from bench.settings import Settings


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
        Row("ceiling", "load client alone → receiver (bench.loadclient, 32 connections)",
            get("ceiling.loopback", "client_rate"), "req/s"),
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
        Row("W1", "enqueue only, into a paused queue (diagnostic)",
            get("mininq.w1", "paused", "enqueue_rate"), "jobs/s", sanic, "Sanic alone", h_enq),
        Row("W1", "end-to-end", w1_e2e, "jobs/s", webhook, "webhook client", h_e2e,
            "≥ 2× huey (goal 3×)", lambda r: r.vs_huey >= 2),
        Row("W1b", "enqueue, /jobs/batch of 100", get("mininq.w1b", "enqueue_rate"),
            "jobs/s", sql_rows, "SQLite tx of 100", h_enq, "≥ 20 % of SQLite tx of 100",
            lambda r: r.vs_ceiling >= 0.2),
        Row("W1b", "enqueue only, into a paused queue (diagnostic)",
            get("mininq.w1b", "paused", "enqueue_rate"), "jobs/s", sql_rows, "SQLite tx of 100",
            h_enq),
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
    rows += [
        Row("noisy", "healthy destination alone", get("mininq.noisy", "alone", "rate"),
            "jobs/s", huey=get("huey.noisy", "alone", "rate")),
        Row("noisy", "healthy beside a hanging destination, in one queue",
            get("mininq.noisy", "beside", "rate"), "jobs/s",
            huey=get("huey.noisy", "beside", "rate")),
        Row("noisy", "healthy rate beside a hanging one, as % of alone",
            get("mininq.noisy", "ratio_percent"), "%", huey=get("huey.noisy", "ratio_percent"),
            target="≥ 80 %", check=lambda r: r.value >= 80),
    ]
    pg_w2 = [[get("postgres.w2", "phases", i, k) for k in ("p50_ms", "p99_ms")]
             for i in range(2)]
    rows += [
        Row("PG W1", f"enqueue, {s.jobs:,} single POSTs, 1 node",
            get("postgres.w1", "enqueue_rate"), "jobs/s", w1_enq, "SQLite W1"),
        Row("PG W1", "end-to-end, 1 node", get("postgres.w1", "e2e_rate"), "jobs/s", w1_e2e,
            "SQLite W1", target="≥ 50 % of SQLite", check=lambda r: r.vs_ceiling >= 0.5),
        Row("PG W1×2", "enqueue, 2 nodes (half the POSTs each)",
            get("postgres.w1x2", "enqueue_rate"), "jobs/s", w1_enq, "SQLite W1"),
        Row("PG W1×2", "end-to-end, 2 nodes", get("postgres.w1x2", "e2e_rate"), "jobs/s",
            w1_e2e, "SQLite W1"),
        Row("PG W2", f"201 → arrival p50 at {lo}, 1 node", pg_w2[0][0], "ms", m_w2[0][0],
            "SQLite", target="≤ 5 ms", check=lambda r: r.value <= 5),
        Row("PG W2", f"201 → arrival p99 at {lo}, 1 node", pg_w2[0][1], "ms", m_w2[0][1],
            "SQLite", target="≤ 20 ms", check=lambda r: r.value <= 20),
        Row("PG W2", f"201 → arrival p50 at {hi}, 1 node", pg_w2[1][0], "ms", m_w2[1][0],
            "SQLite"),
        Row("PG W2", f"201 → arrival p99 at {hi}, 1 node", pg_w2[1][1], "ms", m_w2[1][1],
            "SQLite"),
    ]
    keys = {"ceiling": None, "huey": None, "W1": "mininq.w1", "W1b": "mininq.w1b",
            "W2": "mininq.w2", "delayed": "mininq.delayed", "scale": "mininq.scale",
            "resources": "mininq.w1", "noisy": "mininq.noisy", "PG W1": "postgres.w1", "PG W1×2": "postgres.w1x2",
            "PG W2": "postgres.w2"}
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
