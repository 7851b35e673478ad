"""Errors every storage backend raises, so the API maps them without knowing SQL."""


class StoreError(Exception):
    """Base of the errors below."""


class NotFound(StoreError):
    """No such job, queue or schedule (HTTP 404)."""


class Conflict(StoreError):
    """The thing exists already, or is in a state that forbids the change (HTTP 409)."""


class StartupError(StoreError):
    """The database can't be used at start (unreachable, refused, too new);
    the message names the setting to fix and never holds a password."""
