"""The egress policy at creation (SPEC §10): a callback URL whose host is a
literal address the policy denies is refused with 400. Host names are
checked when delivering, against what they resolve to then."""

from __future__ import annotations

from sanic import Sanic

from mininq.api.validate import ValidationError
from mininq.egress import EgressPolicy, denied_literal


def check(app: Sanic, field: str, url: str) -> None:
    """Raise ValidationError naming `field` when the policy refuses the URL's host."""
    policy: EgressPolicy = app.ctx.egress
    if policy.allows_all:
        return
    denied = denied_literal(policy, url)
    if denied is not None:
        address, rule = denied
        raise ValidationError(field, f"{address} is refused by webhooks.deny_networks rule {rule}")
