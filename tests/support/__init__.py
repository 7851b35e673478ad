"""The integration-test harness: a real mininq server, a real webhook receiver, an API client.

Test files import from here: `from support import MininqServer, Receiver, Reply, wait_until`.
"""

from .client import ApiClient, Response, wait_until
from .receiver import Hit, Receiver, Reply
from .server import MininqServer, ServerError, free_port

__all__ = [
    "ApiClient",
    "Hit",
    "MininqServer",
    "Receiver",
    "Reply",
    "Response",
    "ServerError",
    "free_port",
    "wait_until",
]
