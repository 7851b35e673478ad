"""How long to wait before the next delivery attempt.

Pure functions: the caller passes the attempt number, the settings and, for
`Retry-After` dates, the current time; nothing here reads a clock.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

STRATEGIES = ("exponential", "linear", "fixed")
JITTER = 0.3

# 2**40 times any sane base delay is already years; a bigger exponent only
# builds huge integers before the cap at max_delay_ms throws them away.
_MAX_EXPONENT = 40
_SECONDS_RE = re.compile(r"\d+", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def retry_delay_ms(
    strategy: str,
    attempt: int,
    base_delay_ms: int,
    max_delay_ms: int,
    rng: random.Random | None = None,
) -> int:
    """Delay before attempt `attempt + 1`, after attempt `attempt` (>= 1) failed.

    exponential: base * 2^(n-1); linear: base * n; fixed: base. Then ±30 %
    uniform jitter, so retries of many jobs that failed together spread out;
    then the cap at `max_delay_ms`. Never negative.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    base = max(0, base_delay_ms)
    if strategy == "exponential":
        raw = base * (1 << min(attempt - 1, _MAX_EXPONENT))
    elif strategy == "linear":
        raw = base * attempt
    elif strategy == "fixed":
        raw = base
    else:
        raise ValueError(f"unknown retry_backoff {strategy!r}, expected one of {STRATEGIES}")
    uniform = rng.uniform if rng is not None else random.uniform
    factor = uniform(1 - JITTER, 1 + JITTER)
    return max(0, min(round(raw * factor), max_delay_ms))


def retry_after_ms(header_value: str | None, now_ms: int) -> int | None:
    """A `Retry-After` header as milliseconds from `now_ms` (>= 0).

    Accepts delta-seconds (`120`) or an HTTP date
    (`Wed, 21 Oct 2026 07:28:00 GMT`); a date in the past means 0. None when
    the header is absent or neither form, so the computed backoff applies.
    The caller caps the result at the job's `max_delay_ms`.
    """
    if header_value is None:
        return None
    text = header_value.strip()
    if not text:
        return None
    if _SECONDS_RE.fullmatch(text):
        return int(text) * 1000
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP date means UTC too
        when = when.replace(tzinfo=UTC)
    when_ms = (when - _EPOCH) // timedelta(milliseconds=1)
    return max(0, when_ms - now_ms)
