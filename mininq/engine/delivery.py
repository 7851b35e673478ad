"""One delivery attempt: the webhook POST, and what its answer means.

One pooled aiohttp session serves every delivery of the engine.
`Deliverer.outcome` decides the job's next state from the answer (completed;
retry, and when; or dead) as a plain dict, which the dispatcher hands to the
finisher and the finisher writes with `Store.finish`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson

from mininq import __version__
from mininq.clock import now_ms
from mininq.egress import EgressPolicy, denied_literal
from mininq.engine.backoff import retry_after_ms, retry_delay_ms
from mininq.engine.outcome import classify, describe_exception, describe_http_error, truncate_result
from mininq.engine.resolver import EgressDenied, PolicyResolver

ERROR_BODY_BYTES = 1024
USER_AGENT = f"mininq/{__version__}"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks signature header value (`v1,<base64 HMAC-SHA256>`)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


async def _read_up_to(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to `limit` bytes of a body (`read(n)` alone returns just what has arrived)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit and not stream.at_eof():
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@functools.lru_cache(maxsize=64)
def _timeout(timeout_ms: int) -> aiohttp.ClientTimeout:
    """ClientTimeout is immutable, and most jobs share a few timeouts."""
    return aiohttp.ClientTimeout(total=timeout_ms / 1000)


class Deliverer:
    def __init__(self, concurrency: int, signing_secret: str, max_result_bytes: int,
                 policy: EgressPolicy | None = None) -> None:
        self.signing_secret = signing_secret
        self.max_result_bytes = max_result_bytes
        self.policy = policy or EgressPolicy()
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        # With an egress policy, every host name resolves through it and the
        # connector only sees the addresses it allows.
        resolver = None if self.policy.allows_all else PolicyResolver(self.policy)
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=60,
            resolver=resolver,
        )
        # No cookie jar: a cookie one receiver sets must not ride along with
        # other jobs' deliveries (and a jar would grow with every such receiver).
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, job: dict, body: bytes) -> dict[str, str]:
        headers = {}
        if job["headers"]:
            headers.update(orjson.loads(job["headers"]))
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Mininq-Job-Id": job["id"],
                "X-Mininq-Attempt": str(job["attempt"]),
                "X-Mininq-Queue": job["queue_name"],
            }
        )
        if self.signing_secret:
            ts = now_ms() // 1000
            headers["webhook-id"] = job["id"]
            headers["webhook-timestamp"] = str(ts)
            headers["webhook-signature"] = sign(self.signing_secret, job["id"], ts, body)
        return headers

    async def deliver(self, job: dict) -> dict[str, Any]:
        """POST the job's payload; returns the attempt's outcome (never raises)."""
        assert self._session is not None, "deliverer is not open"
        body = job["payload"].encode()
        started = now_ms()
        # interrupted() needs the start to record how long a cut-short attempt ran.
        job.setdefault("started_at", started)
        t0 = time.monotonic()
        status: int | None = None
        response_body = b""
        retry_after: str | None = None
        error: str | None = None
        timed_out = False
        timeout = _timeout(job["timeout_ms"])
        denied = self._denied_literal(job["callback_url"])
        if denied is not None:
            return self.outcome(job, started, 0, None, b"", None, denied, denied=True)
        try:
            async with self._session.post(
                job["callback_url"], data=body, headers=self._headers(job, body),
                timeout=timeout, allow_redirects=False,
            ) as resp:
                status = resp.status
                limit = self.max_result_bytes if 200 <= status < 300 else ERROR_BODY_BYTES
                response_body = await _read_up_to(resp.content, limit + 1)
                retry_after = resp.headers.get("Retry-After")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # every failure is an outcome, never a crash
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            refused = exc if isinstance(exc, EgressDenied) else getattr(exc, "os_error", None)
            if isinstance(refused, EgressDenied):
                duration_ms = int((time.monotonic() - t0) * 1000)
                return self.outcome(job, started, duration_ms, None, b"", None, str(refused),
                                    denied=True)
            error = describe_exception(exc, job["timeout_ms"])
            timed_out = isinstance(exc, asyncio.TimeoutError)
        duration_ms = int((time.monotonic() - t0) * 1000)
        out = self.outcome(job, started, duration_ms, status, response_body, retry_after, error)
        if timed_out:
            out["timed_out"] = True  # its duration counts in the history's percentiles
        return out

    def _denied_literal(self, url: str) -> str | None:
        """The refusal of a URL whose host is a literal address the policy
        denies (aiohttp never resolves those, so the resolver can't see them)."""
        if self.policy.allows_all:
            return None
        denied = denied_literal(self.policy, url)
        if denied is None:
            return None
        address, rule = denied
        return str(EgressDenied(address, address, rule))

    def outcome(
        self, job: dict, started: int, duration_ms: int, status: int | None,
        body: bytes, retry_after: str | None, error: str | None, denied: bool = False,
    ) -> dict[str, Any]:
        kind = "permanent" if denied else classify(status)
        out: dict[str, Any] = {
            "id": job["id"], "attempt": job["attempt"], "queue_name": job["queue_name"],
            "started_at": started, "duration_ms": duration_ms, "status_code": status,
            "result": None, "error": None, "visible_at": None,
            # For the destination's control (engine/adaptive.py), not stored.
            "transport_failure": status is None and error is not None and not denied,
            "retry_after_ms": None,
        }
        if kind == "completed":
            out["outcome"] = "completed"
            out["result"] = truncate_result(body, self.max_result_bytes)
            return out
        # A 429 or 503 is never completed; its Retry-After also pauses the
        # destination, so it is read even when the job goes dead.
        now = now_ms()
        if status in (429, 503):
            out["retry_after_ms"] = retry_after_ms(retry_after, now)
        out["error"] = error if status is None else describe_http_error(status, body)
        if kind == "permanent" or job["attempt"] > job["max_retries"]:
            out["outcome"] = "dead"
            return out
        delay = out["retry_after_ms"]
        if delay is not None:
            delay = min(delay, job["max_delay_ms"])
        if delay is None:
            delay = retry_delay_ms(
                job["retry_backoff"], job["attempt"], job["base_delay_ms"], job["max_delay_ms"]
            )
        out["outcome"] = "retry"
        out["visible_at"] = now + delay
        return out

    def interrupted(self, job: dict) -> dict[str, Any]:
        """Outcome of a delivery cut short by shutdown: the attempt counts, the job
        goes back to pending (or dead without retries left), nothing stays running."""
        now = now_ms()
        started = job.get("started_at") or now
        error = "delivery interrupted: mininq was shutting down"
        out = self.outcome(job, started, max(0, now - started), None, b"", None, error)
        out["transport_failure"] = False  # cut short here, not the receiver's doing
        if out["outcome"] == "retry":
            out["visible_at"] = now
        return out
