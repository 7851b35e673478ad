"""The per-destination control (mininq/engine/adaptive.py): limit, breaker, pause.
Pure: time is passed in."""

from __future__ import annotations

import pytest

from mininq.destination import destination_of
from mininq.egress import EgressPolicy
from mininq.engine.adaptive import (
    ALIVE,
    CLOSED,
    FAILURE,
    HALF_OPEN,
    NEUTRAL,
    OPEN,
    SUCCESS,
    DestinationControl,
    judge,
)


def finish(c: DestinationControl, now: int, status: int | None = 200, *, transport: bool = False,
           started_at: int | None = None, duration: int = 10, retry_after: int | None = None,
           probe: bool = False) -> None:
    c.finished(now, started_at=now - duration if started_at is None else started_at,
               status=status, transport_failure=transport, duration_ms=duration,
               timeout_ms=1000, retry_after_ms=retry_after, probe=probe,
               error="timeout after 1000 ms" if transport else None)


@pytest.mark.parametrize(("url", "want"), [
    ("http://Example.COM/x?y", "http://example.com:80"),
    ("https://a.b/", "https://a.b:443"),
    ("https://a.b:8443/", "https://a.b:8443"),
    ("http://[::1]:9/x", "http://[::1]:9"),
    ("http://user:pw@h/", "http://h:80"),
])
def test_destination_of(url: str, want: str) -> None:
    assert destination_of(url) == want


@pytest.mark.parametrize(("status", "transport", "want"), [
    (200, False, SUCCESS), (204, False, SUCCESS), (500, False, FAILURE), (503, False, FAILURE),
    (429, False, FAILURE), (404, False, ALIVE), (400, False, ALIVE), (408, False, NEUTRAL),
    (425, False, NEUTRAL), (302, False, NEUTRAL), (None, True, FAILURE), (None, False, NEUTRAL),
])
def test_judge(status: int | None, transport: bool, want: str) -> None:
    assert judge(status, transport) == want


def test_limit_starts_at_max_cuts_once_per_round_trip_and_grows_back() -> None:
    c = DestinationControl(max_limit=32, threshold=0)
    assert c.room(0, 0) == 32
    # 429 and 503 halve; failures of deliveries sent before the last
    # decrease don't decrease again.
    for i in range(10):
        finish(c, 1000 + i, 503, started_at=0)
    assert c.limit == 16
    finish(c, 3000, 429, started_at=1500)
    assert c.limit == 8
    finish(c, 4000, 500, started_at=3999)  # a 500 is a failure, not overload
    assert c.limit == 8
    # No answer at all: down to 1, once per round trip too.
    finish(c, 5000, None, transport=True, started_at=4999)
    assert c.limit == 1
    assert c.room(5001, 1) == 0 and c.room(5001, 0) == 1
    finish(c, 10_000, 200, duration=900)  # a slow 2xx does not raise it
    assert c.limit == 1
    for t in range(40):
        finish(c, 11_000 + t, 200, duration=10)
    assert c.limit == 32, "good answers raise it back to the maximum, no further"
    finish(c, 12_000, None, transport=True, started_at=4_000)
    assert c.limit == 32, "a timeout of a delivery sent before the last decrease"


def test_breaker_opens_after_threshold_probes_once_and_doubles() -> None:
    c = DestinationControl(max_limit=8, threshold=3)
    finish(c, 0, 500)
    finish(c, 1, 404)  # the receiver is alive: the run ends
    finish(c, 2, 408)  # neither ends nor extends a run
    finish(c, 3, 500)
    finish(c, 4, 502)
    assert c.state == CLOSED and c.failures == 2
    finish(c, 5, 500)
    assert c.state == OPEN and c.open_until == 5 + 5000
    assert [t.event for t in c.take_changes()] == ["opened"]
    assert c.room(5004, 0) == 0 and c.reopens_at(5004) == 5005
    assert c.room(5005, 0) == 1 and c.state == HALF_OPEN
    assert c.started(5005) is True, "the first delivery after the cool-down is the probe"
    assert c.room(5006, 1) == 0 and c.started(5006) is False
    finish(c, 6000, 503, probe=True)
    assert c.state == OPEN and c.open_until == 6000 + 10_000, "re-opening doubles"
    assert c.room(16_000, 0) == 1 and c.started(16_000)
    finish(c, 16_100, 500, probe=True)
    assert c.open_until == 16_100 + 20_000
    assert c.room(36_100, 0) == 1 and c.started(36_100)
    finish(c, 36_200, 200, probe=True)
    assert c.state == CLOSED and c.failures == 0
    assert [t.event for t in c.take_changes()] == [
        "half_open", "reopened", "half_open", "reopened", "half_open", "closed"]
    for t in range(3):
        finish(c, 40_000 + t, 500)
    assert c.open_until == 40_002 + 5000, "closing resets the cool-down"


def test_cool_down_caps_at_five_minutes_and_zero_threshold_never_opens() -> None:
    c = DestinationControl(max_limit=4, threshold=1)
    now = 0
    finish(c, now, 500)
    for _ in range(12):
        now = c.open_until
        assert c.room(now, 0) == 1 and c.started(now)
        finish(c, now, 500, probe=True)
    assert c.open_until - now == 300_000
    never = DestinationControl(max_limit=4, threshold=0)
    for t in range(100):
        finish(never, t, 500)
    assert never.state == CLOSED


def test_probe_not_sent_frees_the_probe() -> None:
    c = DestinationControl(max_limit=4, threshold=1)
    finish(c, 0, 500)
    assert c.room(5000, 0) == 1 and c.started(5000)
    finish(c, 5001, None, probe=True)  # interrupted before an answer
    assert c.state == HALF_OPEN and c.room(5002, 0) == 1


def test_retry_after_pauses_the_destination_capped() -> None:
    c = DestinationControl(max_limit=4, threshold=0)
    finish(c, 1000, 503, retry_after=3000)
    assert c.room(3999, 0) == 0 and c.reopens_at(3999) == 4000
    assert c.room(4000, 0) == 2  # halved by the 503, open again
    finish(c, 5000, 429, retry_after=3_600_000)
    assert c.reopens_at(5001) == 5000 + 300_000


def test_reset() -> None:
    c = DestinationControl(max_limit=4, threshold=1)
    finish(c, 0, None, transport=True, retry_after=None)
    assert c.state == OPEN and c.limit == 1
    c.reset()
    assert (c.state, c.failures, c.limit, c.reopens_at(1)) == (CLOSED, 0, 4, None)


@pytest.mark.parametrize(("deny", "allow", "address", "want"), [
    ((), (), "127.0.0.1", None),
    (("private",), (), "127.0.0.1", "private (127.0.0.0/8)"),
    (("private",), (), "169.254.169.254", "private (169.254.0.0/16)"),
    (("private",), (), "::1", "private (::1/128)"),
    (("private",), (), "::ffff:10.1.2.3", "private (10.0.0.0/8)"),
    (("private",), (), "fd00::1", "private (fc00::/7)"),
    (("private",), (), "93.184.216.34", None),
    (("private",), ("127.0.0.1/32",), "127.0.0.1", None),
    (("private",), ("127.0.0.1/32",), "127.0.0.2", "private (127.0.0.0/8)"),
    (("10.0.0.0/8", "192.168.1.0/24"), (), "192.168.1.7", "192.168.1.0/24"),
])
def test_egress_policy(deny: tuple, allow: tuple, address: str, want: str | None) -> None:
    assert EgressPolicy.from_lists(deny, allow).denied_by(address) == want


def test_egress_policy_names_a_bad_entry() -> None:
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not a CIDR"):
        EgressPolicy.from_lists(["10.0.0.0/33"], [])
