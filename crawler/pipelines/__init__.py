"""Item pipelines that ship with crawler: FilesPipeline and ImagesPipeline, as in Scrapy,
with the downloads done by the cluster (see files.py, downloads.py, fetch.py)."""
from .files import FilesPipeline
from .images import ImagesPipeline

__all__ = ["FilesPipeline", "ImagesPipeline"]
