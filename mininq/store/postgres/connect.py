"""Connecting to PostgreSQL, with start-up failures in words that name
`database_url` and never show its password."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from mininq.config import mask_url
from mininq.store.errors import StartupError

CONNECT_WAIT_S = 10.0  # an unreachable server is waited for this long at start
_RETRY_S = 0.5


def _refused(url: str, reason: str) -> StartupError:
    return StartupError(f"database_url: cannot use {mask_url(url)}: {reason}")


def _words(exc: BaseException, url: str) -> str:
    text = str(exc) or type(exc).__name__
    # asyncpg does not put the URL in its messages; if one ever does, mask it.
    return text.replace(url, mask_url(url))


async def connect(url: str, wait_s: float = CONNECT_WAIT_S, **kwargs) -> asyncpg.Connection:
    """One connection; a server that doesn't answer is retried for up to `wait_s`,
    while wrong credentials or a missing database fail at once."""
    deadline = time.monotonic() + wait_s
    while True:
        left = max(0.1, deadline - time.monotonic())
        try:
            return await asyncpg.connect(url, timeout=min(left, 5.0), **kwargs)
        except (asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.InvalidPasswordError) as e:
            raise _refused(url, f"the server refused the credentials ({e})") from None
        except asyncpg.InvalidCatalogNameError as e:
            raise _refused(url, f"{e}") from None
        except (TimeoutError, OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as e:
            if time.monotonic() + _RETRY_S >= deadline:
                raise _refused(
                    url, f"no answer within {wait_s:g} s ({_words(e, url)})"
                ) from None
            await asyncio.sleep(_RETRY_S)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
            raise _refused(url, _words(e, url)) from None


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool.

    asyncpg's default reset sends `RESET ALL; UNLISTEN *; ...` on every
    release, a round trip per store call (a tenth of the engine's time). Pooled
    connections here never SET, LISTEN (the listener has its own connection)
    or take session advisory locks, and asyncpg still rolls back a transaction
    left open before calling this."""


async def create_pool(url: str, max_size: int,
                      settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """A pool whose first connection is made (and its failure explained) by `connect`."""
    first = await connect(url)
    await first.close()
    return await asyncpg.create_pool(url, min_size=1, max_size=max_size,
                                     max_inactive_connection_lifetime=60.0,
                                     server_settings=settings or {}, reset=_keep_session)
