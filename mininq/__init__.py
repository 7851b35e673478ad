"""mininq: background jobs in one executable and one SQLite file."""

__version__ = "0.1.0"
