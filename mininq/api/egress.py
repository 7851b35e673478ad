"""The egress policy at creation (SPEC §10): a callback URL whose host is a
literal address the policy denies is refused with 400. Host names are
checked when delivering, against what they resolve to then."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from sanic import Sanic

from mininq.api.validate import ValidationError
from mininq.egress import EgressPolicy, literal_address


@functools.lru_cache(maxsize=1024)
def _refusal(policy: EgressPolicy, url: str) -> str | None:
    address = literal_address(urlsplit(url).hostname or "")
    rule = None if address is None else policy.denied_by(address)
    if rule is None:
        return None
    return f"{address} is refused by webhooks.deny_networks rule {rule}"


def check(app: Sanic, field: str, url: str) -> None:
    """Raise ValidationError naming `field` when the policy refuses the URL's host."""
    policy: EgressPolicy = app.ctx.egress
    if policy.allows_all:
        return
    problem = _refusal(policy, url)
    if problem is not None:
        raise ValidationError(field, problem)
