"""Retry delays (SPEC §2) and Retry-After parsing: pure functions, real RNG."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from mininq.engine.backoff import retry_after_ms, retry_delay_ms

NOW = 1_789_997_600_000  # 2026-09-21T13:33:20Z


@pytest.mark.parametrize(
    ("strategy", "attempt", "raw"),
    [
        ("exponential", 1, 1000),
        ("exponential", 2, 2000),
        ("exponential", 3, 4000),
        ("exponential", 6, 32000),
        ("linear", 1, 1000),
        ("linear", 2, 2000),
        ("linear", 5, 5000),
        ("fixed", 1, 1000),
        ("fixed", 9, 1000),
    ],
)
def test_formula_with_30_percent_jitter(strategy: str, attempt: int, raw: int) -> None:
    rng = random.Random(attempt)
    delays = [retry_delay_ms(strategy, attempt, 1000, 10**9, rng) for _ in range(3000)]
    low, high = min(delays), max(delays)
    assert 0.7 * raw - 1 <= low and high <= 1.3 * raw + 1, (low, high)
    # the jitter really spans ±30 %, centred on the formula
    assert low < 0.72 * raw and high > 1.28 * raw, (low, high)
    mean = statistics.fmean(delays)
    assert abs(mean - raw) < 0.02 * raw, mean
    assert all(isinstance(d, int) for d in delays)


def test_cap_applies_after_jitter() -> None:
    rng = random.Random(1)
    delays = {retry_delay_ms("exponential", 20, 1000, 300_000, rng) for _ in range(200)}
    assert delays == {300_000}
    # below the cap the jitter is kept; close to it some land on the cap exactly
    near = [retry_delay_ms("fixed", 1, 280_000, 300_000, rng) for _ in range(500)]
    assert max(near) == 300_000 and min(near) < 200_000


# What "fast" guards against: computing 2 ** attempt before capping. For attempt
# 10**9 that alone took 5 s here (and 10**18 never finishes); the capped
# computation takes microseconds. The bound sits far from both, so a loaded
# machine can't break it and an uncapped power can't pass it.
UNCAPPED_POWER_BOUND_S = 1.0


def test_huge_attempt_numbers_are_fast_and_capped() -> None:
    started = time.perf_counter()
    for attempt in (64, 1_000, 10**9, 10**18):
        assert retry_delay_ms("exponential", attempt, 1000, 300_000) == 300_000
    for attempt in (1_000, 10**9, 10**18):
        assert retry_delay_ms("linear", attempt, 1000, 300_000) == 300_000
    elapsed = time.perf_counter() - started
    assert elapsed < UNCAPPED_POWER_BOUND_S, (
        f"{elapsed * 1000:.1f} ms for 7 delays: is 2 ** attempt computed before the cap?"
    )


@pytest.mark.parametrize(("base", "maximum"), [(0, 300_000), (1000, 0), (-5, 300_000), (1000, -1)])
def test_never_negative(base: int, maximum: int) -> None:
    for strategy in ("exponential", "linear", "fixed"):
        assert retry_delay_ms(strategy, 3, base, maximum) == 0


def test_same_seed_same_delays() -> None:
    a = [retry_delay_ms("exponential", n, 500, 60_000, random.Random(7)) for n in range(1, 8)]
    b = [retry_delay_ms("exponential", n, 500, 60_000, random.Random(7)) for n in range(1, 8)]
    assert a == b


def test_rejects_unknown_strategy_and_attempt_zero() -> None:
    with pytest.raises(ValueError, match="retry_backoff"):
        retry_delay_ms("quadratic", 1, 1000, 300_000)
    with pytest.raises(ValueError, match="attempt"):
        retry_delay_ms("fixed", 0, 1000, 300_000)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120_000),
        (" 5 ", 5_000),
        ("0", 0),
        ("007", 7_000),
        # HTTP dates, relative to NOW = 2026-09-21T13:33:20Z
        ("Mon, 21 Sep 2026 13:33:50 GMT", 30_000),
        ("Mon, 21 Sep 2026 15:33:50 +0200", 30_000),
        ("Mon, 21 Sep 2026 13:33:50 -0000", 30_000),
        ("Monday, 21-Sep-26 13:35:20 GMT", 120_000),  # obsolete RFC 850 form
        ("Mon Sep 21 13:33:21 2026", 1_000),  # asctime form
        ("Mon, 21 Sep 2026 13:00:00 GMT", 0),  # in the past
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
    ],
)
def test_retry_after_values(header: str, expected: int) -> None:
    assert retry_after_ms(header, NOW) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "-5",
        "1.5",
        "+3",
        "soon",
        "١٢",
        "1_000",
        "12 s",
        "Mon, 21 Sep 99999 13:33:50 GMT",
        "Mon, 32 Sep 2026 13:33:50 GMT",
    ],
)
def test_retry_after_unusable_is_none(header: str | None) -> None:
    assert retry_after_ms(header, NOW) is None
