"""The egress policy (SPEC §10): which addresses deliveries may connect to.

Pure: CIDR lists in, a verdict per address out. The delivery's resolver
(`engine/resolver.py`) asks it about every address a host name resolves
to; the API (at creation) and the delivery (before connecting, as aiohttp
never resolves them) about a URL whose host is a literal address.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mininq.config import WebhooksConfig

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# `"private"` in deny_networks/allow_networks: loopback, RFC 1918, link-local
# (cloud metadata lives at 169.254.169.254), IPv6 loopback, ULA, link-local.
PRIVATE = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
           "::1/128", "fc00::/7", "fe80::/10")


def parse_networks(entries: Iterable[str]) -> list[tuple[str, IPNetwork]]:
    """(rule as written, network) per entry; "private" expands to its set.
    Raises ValueError naming a bad entry."""
    out: list[tuple[str, IPNetwork]] = []
    for entry in entries:
        text = entry.strip()
        if text.lower() == "private":
            out.extend((f"private ({cidr})", ipaddress.ip_network(cidr)) for cidr in PRIVATE)
            continue
        try:
            out.append((text, ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ValueError(f"{entry!r} is not a CIDR network (e.g. 10.0.0.0/8) "
                             f"or \"private\"") from None
    return out


@dataclass(frozen=True)
class EgressPolicy:
    deny: tuple[tuple[str, IPNetwork], ...] = ()
    allow: tuple[tuple[str, IPNetwork], ...] = ()

    @classmethod
    def from_lists(cls, deny: Iterable[str], allow: Iterable[str]) -> EgressPolicy:
        return cls(tuple(parse_networks(deny)), tuple(parse_networks(allow)))

    @classmethod
    def from_config(cls, webhooks: WebhooksConfig) -> EgressPolicy:
        """The policy of webhooks.deny_networks and webhooks.allow_networks."""
        return cls.from_lists(webhooks.deny_networks, webhooks.allow_networks)

    @property
    def allows_all(self) -> bool:
        return not self.deny

    def denied_by(self, address: str) -> str | None:
        """The deny rule refusing `address`, or None when it may be reached."""
        if not self.deny:
            return None
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        rule = next((r for r, net in self.deny if ip.version == net.version and ip in net), None)
        if rule is None:
            return None
        if any(ip.version == net.version and ip in net for _, net in self.allow):
            return None
        return rule


def literal_address(host: str) -> str | None:
    """The host as an IP address when it is one (brackets of IPv6 removed)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def denied_literal(policy: EgressPolicy, url: str) -> tuple[str, str] | None:
    """(address, deny rule) when the URL's host is a literal address the policy
    refuses; None for a host name or an address it allows. Cached: most jobs
    share a few URLs."""
    address = literal_address(urlsplit(url).hostname or "")
    rule = None if address is None else policy.denied_by(address)
    return None if rule is None else (address, rule)
