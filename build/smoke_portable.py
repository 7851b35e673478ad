"""Run the executable where a user would: a bare Debian 11 root, and this machine.

    sudo python3 build/smoke_portable.py dist/mininq --root-from "$(bash build/portable.sh --print-base)"
    python3 build/smoke_portable.py dist/mininq            # on this machine only

With --root-from DIR (a `debootstrap --variant=minbase` tree, which
build/portable.sh keeps untouched for this), the tree is copied to a fresh
root, the executable is copied in alone, and it runs there under chroot (in a
private mount namespace with /proc and /dev mounted; the network, and so the
loopback, is this machine's). Then the same again straight on this machine.
Each place checks: `--version`; a start from an empty directory, timed to the
first /health 200; one job delivered to a webhook receiver running here;
`mininq backup DEST` of the live database; SIGTERM ending it with exit 0 and
no `_MEI*` folder left in its TMPDIR. Exits 1 on the first failure.
Only the standard library: any Python 3.11+ runs it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HEALTH_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 40.0


class Failed(Exception):
    pass


class Receiver:
    """A webhook receiver on 127.0.0.1 that records the bodies it was sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append(body)
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Place:
    """Where the executable runs: this machine, or a chroot."""

    def __init__(self, name: str, root: Path | None, workdir: Path) -> None:
        self.name = name
        self.root = root  # None: this machine
        self.workdir = workdir  # as seen from inside
        self.outside = root / workdir.relative_to("/") if root else workdir

    def command(self, args: list[str], env: dict[str, str]) -> list[str]:
        inner = ["/usr/bin/env", "-i", "-C", str(self.workdir)]
        inner += [f"{k}={v}" for k, v in env.items()] + ["./mininq", *args]
        if self.root is None:
            return inner
        # unshare execs (no fork), so the Popen pid is mininq's bootloader.
        script = (
            'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(self.root),
            *inner,
        ]

    def environment(self, port: int) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "TMPDIR": str(self.workdir / "tmp"),
            "LANG": "C",
            "MININQ_PORT": str(port),
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def check(place: Place, executable: Path, receiver: Receiver) -> None:
    print(f"--- {place.name}")
    place.outside.mkdir(parents=True)
    (place.outside / "tmp").mkdir()
    shutil.copy2(executable, place.outside / "mininq")
    port = free_port()
    env = place.environment(port)

    done = subprocess.run(
        place.command(["--version"], env), capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise Failed(f"--version exited {done.returncode}: {done.stderr.strip()}")
    print(f"--version: {done.stdout.strip()}")

    started = time.monotonic()
    log = open(place.outside.parent / f"{place.outside.name}.log", "wb")  # noqa: SIM115 (closed on every path below)
    server = subprocess.Popen(place.command([], env), stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                status, health = request(port, "GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None:
                raise Failed(f"exited {server.returncode} before /health answered")
            if time.monotonic() - started > HEALTH_TIMEOUT_S:
                raise Failed(f"no /health 200 within {HEALTH_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        print(f"start to /health 200: {time.monotonic() - started:.3f} s ({health})")

        status, job = request(
            port, "POST", "/jobs", {"callback_url": receiver.url, "payload": {"where": place.name}}
        )
        if status != 201:
            raise Failed(f"POST /jobs answered {status}: {job}")
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        while True:
            _, current = request(port, "GET", f"/jobs/{job['id']}")
            if current["status"] == "completed":
                break
            if time.monotonic() > deadline:
                raise Failed(f"job not completed within {DELIVERY_TIMEOUT_S:.0f} s: {current}")
            time.sleep(0.05)
        if not any(
            json.loads(b).get("where") == place.name for b in receiver.bodies if b.startswith(b"{")
        ):
            raise Failed(f"the receiver got no body from this job: {receiver.bodies[-1:]}")
        print(f"job {job['id']} delivered to the receiver and completed")

        done = subprocess.run(
            place.command(["backup", "backup.db"], env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise Failed(f"backup exited {done.returncode}: {done.stderr.strip()}")
        with sqlite3.connect(place.outside / "backup.db") as db:
            copied = db.execute("SELECT count(*) FROM jobs WHERE id = ?", (job["id"],)).fetchone()
        if copied != (1,):
            raise Failed("the backup lacks the job")
        print("backup: written, holds the job")

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=STOP_TIMEOUT_S)
        if code != 0:
            raise Failed(f"SIGTERM: exit code {code}")
        left = sorted(p.name for p in (place.outside / "tmp").iterdir())
        if left:
            raise Failed(f"left behind in TMPDIR: {left}")
        print("SIGTERM: exit 0, TMPDIR empty")
    except BaseException:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
        print(f"its output ({log.name}):\n" + Path(log.name).read_text(errors="replace")[-3000:])
        raise
    log.close()


def make_root(base: Path, where: Path) -> Path:
    """A fresh copy of the untouched minbase tree: no Python, nothing of the build."""
    root = where / "root"
    subprocess.run(["cp", "-a", f"{base}/.", str(root)], check=True)
    for python in root.glob("usr/bin/python*"):
        raise Failed(f"the test root has {python.name}: it must be a bare system")
    glibc = subprocess.run(
        ["chroot", str(root), "ldd", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    os_name = (root / "etc/debian_version").read_text().strip()
    print(f"test root: Debian {os_name}, {glibc}")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("executable", type=Path)
    parser.add_argument(
        "--root-from",
        type=Path,
        metavar="DIR",
        help="a minbase debootstrap tree to copy for the chroot run",
    )
    args = parser.parse_args()
    executable = args.executable.resolve()

    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="mininq-smoke-", dir="/var/tmp") as tmp:
        where = Path(tmp)
        try:
            if args.root_from:
                root = make_root(args.root_from, where)
                check(
                    Place("Debian 11 minbase chroot", root, Path("/srv/run")), executable, receiver
                )
            check(Place("this machine", None, where / "host"), executable, receiver)
        except Failed as e:
            print(f"FAIL: {e}")
            return 1
        finally:
            receiver.close()
            if args.root_from:
                # Nothing is mounted out here (private namespaces), so this is a plain delete.
                shutil.rmtree(where / "root", ignore_errors=True)
    print("ok: the executable works in every place checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
