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


class DatabaseRefused(StoreError):
    """mininq won't open this database (not ours, damaged, or from a newer mininq);
    the message names the file. Raised at start-up, before anything is written."""


class Unavailable(StoreError):
    """The database can't do this now: the disk is full, the file is read-only,
    locked past the busy timeout, or failing I/O. `status` is the HTTP answer
    (507 for a full disk, 503 otherwise) and `cause` the short words for it."""

    def __init__(self, cause: str, detail: str, status: int = 503) -> None:
        super().__init__(f"database: {cause} ({detail})")
        self.cause = cause
        self.detail = detail
        self.status = status
