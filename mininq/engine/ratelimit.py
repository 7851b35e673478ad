"""Token bucket for a queue's `rate_limit_rps` / `rate_limit_burst`.

Pure: every method takes the current time in epoch ms, so the dispatcher can
ask "how long until the next token?" and sleep exactly that long.
"""

from __future__ import annotations

import math

# Float refill can leave 0.9999999 of a token where 1 is due; without this
# slack `ms_until_available` would answer 0 while `take` still refuses.
_EPSILON = 1e-9


class TokenBucket:
    """Continuously refilled bucket; starts full.

    A burst below 1 would never hold a whole token, so the bucket always
    holds at least one: `rate_limit_rps = 0.5, burst = 0.5` means one
    delivery every two seconds.
    """

    def __init__(self, rate_per_sec: float, burst: float, now_ms: int) -> None:
        self._set_limits(rate_per_sec, burst)
        self._tokens = self.capacity
        self._updated_ms = now_ms

    def _set_limits(self, rate_per_sec: float, burst: float) -> None:
        if not rate_per_sec > 0 or math.isinf(rate_per_sec):
            raise ValueError(f"rate_per_sec must be a positive number, got {rate_per_sec!r}")
        if not burst > 0 or math.isinf(burst):
            raise ValueError(f"burst must be a positive number, got {burst!r}")
        self.rate_per_sec = float(rate_per_sec)
        self.capacity = max(1.0, float(burst))

    def _refill(self, now_ms: int) -> None:
        # A clock that steps backwards neither refills nor drains the bucket.
        if now_ms > self._updated_ms:
            gained = (now_ms - self._updated_ms) * self.rate_per_sec / 1000
            self._tokens = min(self.capacity, self._tokens + gained)
            self._updated_ms = now_ms

    def take(self, now_ms: int, n: int = 1) -> bool:
        """Take `n` tokens if they are there now; False (and take none) if not."""
        self._refill(now_ms)
        if self._tokens + _EPSILON >= n:
            self._tokens = max(0.0, self._tokens - n)
            return True
        return False

    def available(self, now_ms: int) -> int:
        """Whole tokens that could be taken now."""
        self._refill(now_ms)
        return int(self._tokens + _EPSILON)

    def ms_until_available(self, now_ms: int, n: int = 1) -> int:
        """Milliseconds until `take(n)` would succeed; 0 if it would now."""
        if n > self.capacity:
            raise ValueError(f"cannot wait for {n} tokens in a bucket of {self.capacity:g}")
        self._refill(now_ms)
        missing = n - self._tokens
        if missing <= _EPSILON:
            return 0
        return max(1, math.ceil(missing * 1000 / self.rate_per_sec - _EPSILON))

    @classmethod
    def from_state(cls, rate_per_sec: float, burst: float, tokens: float | None,
                   updated_ms: int | None, now_ms: int) -> TokenBucket:
        """A bucket as stored elsewhere (a database row shared by nodes); no
        stored state means a full bucket."""
        bucket = cls(rate_per_sec, burst, now_ms)
        if tokens is not None and updated_ms is not None:
            bucket._tokens = min(bucket.capacity, max(0.0, float(tokens)))
            bucket._updated_ms = updated_ms
        return bucket

    def state(self) -> tuple[float, int]:
        """(tokens, as of epoch ms) to store and rebuild with `from_state`."""
        return self._tokens, self._updated_ms

    def reconfigure(self, rate_per_sec: float, burst: float, now_ms: int) -> None:
        """New limits from `PUT /queues`; tokens already earned are kept, up to the new burst."""
        self._refill(now_ms)
        self._set_limits(rate_per_sec, burst)
        self._tokens = min(self._tokens, self.capacity)
