"""Loading user components named in settings (ITEM_PIPELINES, DOWNLOADER_MIDDLEWARES,
SPIDER_MIDDLEWARES) and the `crawler` object Scrapy components are built from."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .signals import SignalManager
from .spider.stats import SpiderStats


@dataclass
class Crawler:
    """What a component's `from_crawler(crawler)` gets: the settings, the signals and the
    spider's `stats` (crawler.spider.stats) of this process, and the spider; on the master
    also `media`, where media pipelines ask for downloads (crawler.pipelines.downloads)."""

    settings: dict[str, Any]
    signals: SignalManager
    spider: Any = None
    media: Any = None
    stats: SpiderStats = field(default_factory=SpiderStats)


def load_class(setting: str, path: str) -> type:
    """The class at a dotted path; UsageError naming the setting when it cannot be loaded."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"{setting}: cannot load {path}: {exc}") from None
    except Exception as exc:  # the component's module itself fails
        raise UsageError(f"{setting}: {path} fails to import: {exc!r}") from None


def load(setting: str, spec: dict[str, int | None], crawler: Crawler) -> list[Any]:
    """Instances of the components in `spec` ({path: order}; None disables one), lowest
    order first, each made with from_crawler(crawler), else from_settings(settings), else
    with no arguments."""
    if not isinstance(spec, dict):
        raise UsageError(f"{setting}: expected a dict of {{'module.Class': order}}")
    enabled = sorted(((order, path) for path, order in spec.items() if order is not None),
                     key=lambda pair: pair[0])
    return [make(setting, load_class(setting, path), crawler) for _, path in enabled]


def make(setting: str, cls: type, crawler: Crawler) -> Any:
    try:
        if hasattr(cls, "from_crawler"):
            return cls.from_crawler(crawler)
        if hasattr(cls, "from_settings"):
            return cls.from_settings(crawler.settings)
        return cls()
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{setting}: {cls.__module__}.{cls.__qualname__} cannot be made: "
                         f"{exc!r}") from None
