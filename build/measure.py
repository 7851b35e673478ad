"""Measure the mininq executable: start-up time, file size, idle memory.

    python3 build/measure.py dist/mininq
    python3 build/measure.py dist/mininq-onedir/mininq
    python3 build/measure.py -- python3 -m mininq      # from source, for comparison

Each run starts the program in a fresh empty directory (so a new database is
created and migrated, as on a first start) with `serve --port P`, measures the
time from exec to the first `GET /health` 200, waits `--idle` seconds, sums
the memory of the whole process tree (the bootloader, Sanic's main process,
the HTTP worker and the engine), then stops it with SIGTERM. The table shows
the median of `--runs` runs (and the min and max). Only the standard library
is used, so any Python 3.11+ can run it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    startup_s: float
    startup_cpu_s: float  # user+system CPU of the process tree until /health 200
    rss_kib: int  # sum of VmRSS: counts shared pages once per process
    pss_kib: int  # sum of Pss: shared pages split between the processes
    processes: int
    exit_code: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def status_kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def one_run(command: list[str], idle_s: float, timeout_s: float) -> Run:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mininq-measure-") as workdir:
        argv = [*command, "serve", "--port", str(port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MININQ_")}
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while not healthy(port):
                if proc.poll() is not None:
                    raise SystemExit(f"{' '.join(argv)} exited with {proc.returncode}")
                if time.perf_counter() - started > timeout_s:
                    raise SystemExit(f"{' '.join(argv)}: no /health 200 in {timeout_s} s")
                time.sleep(0.005)
            startup = time.perf_counter() - started
            startup_cpu = cpu_seconds(process_tree(proc.pid))
            time.sleep(idle_s)
            pids = process_tree(proc.pid)
            rss = sum(status_kib(f"/proc/{p}/status", "VmRSS") for p in pids)
            pss = sum(status_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return Run(startup, startup_cpu, rss, pss, len(pids), code)


def size_of(program: str) -> tuple[str, int] | None:
    """The size a user downloads: the file, or the whole one-dir folder."""
    path = Path(program)
    if not path.is_file():
        return None
    if (path.parent / "_internal").is_dir():
        folder = path.parent
        total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        return f"{folder}/ (one-dir)", total
    return str(path), path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command", nargs="+", help="the executable, or a command like python3 -m mininq"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds idle before reading memory"
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    runs = []
    for i in range(args.runs):
        run = one_run(args.command, args.idle, args.timeout)
        runs.append(run)
        print(
            f"run {i + 1}: start-up {run.startup_s * 1000:.0f} ms "
            f"({run.startup_cpu_s * 1000:.0f} ms CPU), "
            f"RSS {run.rss_kib / 1024:.1f} MiB, PSS {run.pss_kib / 1024:.1f} MiB "
            f"({run.processes} processes), exit {run.exit_code}",
            file=sys.stderr,
        )

    def row(name: str, values: list[float], unit: str, fmt: str) -> str:
        med, lo, hi = statistics.median(values), min(values), max(values)
        return f"| {name} | {med:{fmt}} {unit} | {lo:{fmt}}–{hi:{fmt}} {unit} |"

    load = os.getloadavg()[0]
    print(
        f"\n`{' '.join(args.command)}`, median of {args.runs} runs, {args.idle:g} s idle, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the end\n"
    )
    print("| measure | median | min–max |")
    print("|---|---|---|")
    print(row("exec → /health 200", [r.startup_s * 1000 for r in runs], "ms", ".0f"))
    print(
        row(
            "CPU time until then, all processes",
            [r.startup_cpu_s * 1000 for r in runs],
            "ms",
            ".0f",
        )
    )
    print(row("idle RSS, all processes (sum)", [r.rss_kib / 1024 for r in runs], "MiB", ".1f"))
    print(row("idle PSS, all processes (sum)", [r.pss_kib / 1024 for r in runs], "MiB", ".1f"))
    print(f"| processes | {runs[0].processes} | |")
    print(f"| exit code after SIGTERM | {', '.join(str(r.exit_code) for r in runs)} | |")
    if (size := size_of(args.command[0])) is not None:
        where, total = size
        print(f"| size of {where} | {total / 1e6:.1f} MB ({total} bytes) | |")


if __name__ == "__main__":
    main()
