"""The React storefront's built bundle (``services/frontend/web/dist``, made by ``bin/setup``
with Vite; never committed) and how the frontend serves it.

``GET /`` answers the bundle's ``index.html`` with the catalogue the frontend fetched from the
api-gateway embedded as JSON (``<script id="shop-state" type="application/json">``), so the
first paint shows products without a second round trip and ``GET /`` makes the same downstream
call with or without the bundle. The bundle's scripts and styles are under ``/static/`` with a
content hash in their names, cached for a year. Without a bundle (no Node.js where setup ran)
the frontend serves the simple server-rendered page instead, with a one-line note.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

#: Where the frontend looks for the bundle (``STOREFRONT_DIST`` overrides it).
DEFAULT_DIST = Path(str(files("services.frontend"))) / "web" / "dist"
#: The empty state in the built index.html that the frontend fills in.
STATE_SLOT = '<script id="shop-state" type="application/json">null</script>'
_HASHED = re.compile(r"-[A-Za-z0-9_-]{8}\.(?:js|css)$")
LEGACY_STATIC = Path(str(files("services.frontend").joinpath("static")))


@dataclass(frozen=True, slots=True)
class Bundle:
    """A built storefront: its folder and its ``index.html`` split around the state slot."""

    dist: Path
    head: str
    tail: str

    def page(self, state: dict[str, Any]) -> str:
        """index.html with ``state`` in the slot (``<`` escaped, so no text can end the
        script element)."""
        data = json.dumps(state, separators=(",", ":")).replace("<", "\\u003c")
        return (
            f'{self.head}<script id="shop-state" type="application/json">{data}</script>{self.tail}'
        )


def find_bundle(env: dict[str, str] | None = None) -> Bundle | None:
    """The built bundle, or None when it is missing (or its index.html has no state slot)."""
    source = os.environ if env is None else env
    dist = Path(source.get("STOREFRONT_DIST") or DEFAULT_DIST)
    try:
        html = (dist / "index.html").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    head, slot, tail = html.partition(STATE_SLOT)
    if not slot:
        return None
    return Bundle(dist, head, tail)


class StorefrontStatic(StaticFiles):
    """``/static/``: the bundle's files first, then the simple page's ``app.js``/``style.css``;
    content-hashed bundle files are immutable, so browsers keep them for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and _HASHED.search(path):
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def static_files(bundle: Bundle | None) -> StorefrontStatic:
    """The ``/static`` app: the bundle (when built) before the simple page's files."""
    if bundle is None:
        return StorefrontStatic(directory=LEGACY_STATIC)
    static = StorefrontStatic(directory=bundle.dist)
    static.all_directories = [bundle.dist, LEGACY_STATIC]
    return static
