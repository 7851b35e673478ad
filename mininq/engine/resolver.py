"""The egress policy at connect time (SPEC §10): an aiohttp resolver that
hands the connector only addresses the policy allows.

aiohttp connects to exactly the addresses its resolver returns, so checking
them here leaves no gap between check and connect for a DNS answer that
changes (rebinding). A host given as a literal address never reaches a
resolver: `Deliverer` checks those itself before sending.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from mininq.egress import EgressPolicy


class EgressDenied(Exception):
    """Every address of the host is refused by the policy (not an OSError,
    so that aiohttp passes it through instead of calling it a DNS failure)."""

    def __init__(self, host: str, address: str, rule: str) -> None:
        shown = address if host == address else f"{host} ({address})"
        super().__init__(f"egress denied: {shown} is in webhooks.deny_networks rule {rule}")


class PolicyResolver(AbstractResolver):
    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """The resolved addresses the policy allows; EgressDenied when none is."""
        found = await self.inner.resolve(host, port, family)
        allowed = []
        refused: tuple[str, str] | None = None
        for result in found:
            rule = self.policy.denied_by(result["host"])
            if rule is None:
                allowed.append(result)
            elif refused is None:
                refused = (result["host"], rule)
        if not allowed and refused is not None:
            raise EgressDenied(host, *refused)
        return allowed

    async def close(self) -> None:
        await self.inner.close()
