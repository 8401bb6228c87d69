"""The status page: one HTML file with its CSS, JS and SVG chart inline (nothing is loaded
from the network). Live, it polls stats.json every second; static, it carries the data."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

_SLOT = "<!--DATA-->"


@lru_cache(maxsize=1)
def _template() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def live() -> bytes:
    """The page that polls the server it came from."""
    return _template().replace(_SLOT, "").encode()


def static(snap: dict[str, Any]) -> str:
    """The page with a snapshot embedded, for a file to open without any server."""
    # "<" only occurs inside JSON strings: escaped, nothing in the data can end the script.
    data = json.dumps(snap).replace("<", "\\u003c")
    return _template().replace(
        _SLOT, f'<script id="data" type="application/json">{data}</script>')
