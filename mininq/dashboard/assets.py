"""Templates and static files, read into memory once at start-up.

A one-file executable unpacks its data to /tmp/_MEI*, which tmp cleaners may
delete under a long-running server, so nothing here touches the disk after
import. Static files are served under versioned names (`htmx-2.0.11.min.js`,
`dashboard.<hash>.css`): a browser may cache them forever.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib.resources import files

from jinja2 import DictLoader, Environment, StrictUndefined

HTMX_VERSION = "2.0.11"
_HTMX_FILE = f"htmx-{HTMX_VERSION}.min.js"
_OWN_FILES = ("dashboard.css", "dashboard.js")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _read_dir(name: str) -> dict[str, bytes]:
    folder = files("mininq.dashboard").joinpath(name)
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def _versioned(name: str, body: bytes) -> str:
    """`dashboard.css` -> `dashboard.<first 10 hex of sha256>.css`."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(body).hexdigest()[:10]}{dot}{ext}"


def _load_static() -> tuple[dict[str, StaticFile], dict[str, str]]:
    """(served name -> file, logical name -> URL path)."""
    raw = _read_dir("static")
    served: dict[str, StaticFile] = {}
    urls: dict[str, str] = {}
    for logical in (_HTMX_FILE, *_OWN_FILES):
        body = raw[logical]
        name = logical if logical == _HTMX_FILE else _versioned(logical, body)
        ext = logical[logical.rfind("."):]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        served[name] = StaticFile(body, _TYPES[ext], etag)
        urls[logical.replace(_HTMX_FILE, "htmx.js")] = f"/static/{name}"
    return served, urls


def _environment(urls: dict[str, str]) -> Environment:
    sources = {name: body.decode("utf-8") for name, body in _read_dir("templates").items()}
    env = Environment(
        loader=DictLoader(sources),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = urls
    return env


STATIC, STATIC_URLS = _load_static()
TEMPLATES = _environment(STATIC_URLS)
