"""Item pipelines that ship with crawler: FilesPipeline and ImagesPipeline, as in Scrapy,
with the downloads done by the cluster (see files.py, downloads.py, fetch.py)."""
from __future__ import annotations

from typing import Any

__all__ = ["FilesPipeline", "ImagesPipeline"]


def __getattr__(name: str) -> Any:
    """The pipelines, imported when first asked for: a crawl without them (and the master's
    import of downloads.py) need not import them."""
    if name == "FilesPipeline":
        from .files import FilesPipeline
        return FilesPipeline
    if name == "ImagesPipeline":
        from .images import ImagesPipeline
        return ImagesPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
