"""Token bucket: pure, time passed in as epoch ms."""

from __future__ import annotations

import copy
import math

import pytest

from mininq.engine.ratelimit import TokenBucket

T0 = 1_790_000_000_000


def test_starts_full_and_empties() -> None:
    bucket = TokenBucket(rate_per_sec=2, burst=5, now_ms=T0)
    assert bucket.available(T0) == 5
    assert [bucket.take(T0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.available(T0) == 0


def test_continuous_refill() -> None:
    bucket = TokenBucket(rate_per_sec=10, burst=1, now_ms=T0)
    assert bucket.take(T0)
    assert not bucket.take(T0 + 50)  # half a token
    assert bucket.ms_until_available(T0 + 50) == 50
    assert bucket.take(T0 + 100)


def test_refill_stops_at_burst() -> None:
    bucket = TokenBucket(rate_per_sec=100, burst=3, now_ms=T0)
    for _ in range(3):
        assert bucket.take(T0)
    assert bucket.available(T0 + 3_600_000) == 3


@pytest.mark.parametrize("rate", [0.001, 0.3, 1, 3, 7, 33.3, 1000, 250_000])
def test_wait_time_is_exact(rate: float) -> None:
    """Taking at now + ms_until_available succeeds; a millisecond earlier it does not."""
    now = T0
    bucket = TokenBucket(rate_per_sec=rate, burst=1, now_ms=now)
    assert bucket.take(now)
    for _ in range(20):
        wait = bucket.ms_until_available(now)
        expected = math.ceil(1000 / rate)
        assert wait in (expected - 1, expected, expected + 1), (wait, expected)
        if wait > 1:
            probe = copy.copy(bucket)
            assert not probe.take(now + wait - 1), (
                f"rate {rate}: token already there at {wait - 1} ms"
            )
        now += max(wait, 1)
        assert bucket.ms_until_available(now) == 0
        assert bucket.take(now), f"rate {rate}: no token after waiting {wait} ms"


def test_sustained_rate_with_a_sleeping_dispatcher() -> None:
    """A loop that sleeps exactly ms_until_available gets rate * seconds + burst tokens."""
    bucket = TokenBucket(rate_per_sec=5, burst=2, now_ms=T0)
    now, taken, loops = T0, 0, 0
    while now <= T0 + 10_000:
        loops += 1
        if bucket.take(now):
            taken += 1
        else:
            now += bucket.ms_until_available(now)
    assert taken == 2 + 50, taken
    assert loops <= 2 * taken + 1, f"{loops} loop turns for {taken} tokens: spinning"


def test_burst_below_one_still_allows_one() -> None:
    bucket = TokenBucket(rate_per_sec=0.5, burst=0.5, now_ms=T0)
    assert bucket.capacity == 1
    assert bucket.take(T0)
    assert bucket.ms_until_available(T0) == 2000


def test_fractional_burst_counts_whole_tokens() -> None:
    bucket = TokenBucket(rate_per_sec=1, burst=2.5, now_ms=T0)
    assert bucket.available(T0) == 2
    assert bucket.take(T0) and bucket.take(T0)
    assert not bucket.take(T0)
    assert bucket.ms_until_available(T0) == 500


def test_take_n_is_all_or_nothing() -> None:
    bucket = TokenBucket(rate_per_sec=1, burst=3, now_ms=T0)
    assert bucket.take(T0, 2)
    assert not bucket.take(T0, 2)
    assert bucket.available(T0) == 1
    assert bucket.ms_until_available(T0, 2) == 1000
    with pytest.raises(ValueError):
        bucket.ms_until_available(T0, 4)


def test_clock_going_backwards_neither_refills_nor_breaks() -> None:
    bucket = TokenBucket(rate_per_sec=1, burst=1, now_ms=T0)
    assert bucket.take(T0)
    assert not bucket.take(T0 - 60_000)
    assert bucket.ms_until_available(T0 - 60_000) == 1000
    assert bucket.take(T0 + 1000)


def test_reconfigure_keeps_tokens_up_to_new_burst() -> None:
    bucket = TokenBucket(rate_per_sec=1, burst=10, now_ms=T0)
    for _ in range(4):
        assert bucket.take(T0)
    bucket.reconfigure(rate_per_sec=1, burst=20, now_ms=T0)
    assert bucket.available(T0) == 6  # not refilled to the new burst
    bucket.reconfigure(rate_per_sec=1, burst=2, now_ms=T0)
    assert bucket.available(T0) == 2  # clamped


def test_reconfigure_refills_at_old_rate_then_uses_new_rate() -> None:
    bucket = TokenBucket(rate_per_sec=1, burst=5, now_ms=T0)
    for _ in range(5):
        assert bucket.take(T0)
    bucket.reconfigure(rate_per_sec=100, burst=5, now_ms=T0 + 500)  # half a token at 1/s
    assert bucket.available(T0 + 500) == 0
    assert bucket.ms_until_available(T0 + 500) == 5
    assert bucket.available(T0 + 540) == 4


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1, 1), (float("nan"), 1), (float("inf"), 1), (1, 0), (1, -2), (1, float("nan"))],
)
def test_rejects_non_positive_limits(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_sec=rate, burst=burst, now_ms=T0)
    bucket = TokenBucket(rate_per_sec=1, burst=1, now_ms=T0)
    with pytest.raises(ValueError):
        bucket.reconfigure(rate, burst, T0)
