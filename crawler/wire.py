"""The plain-data protocol: what may travel between master and workers.

Tasks, results and items are plain data: None, bools, numbers, strings, bytes, and lists,
tuples and dicts of them (items' and meta's keys are strings). Whatever a spider yields is
checked here where it is made, on the worker, so a mistake fails its page instead of the
batch (or the worker) it would travel in.
"""
from __future__ import annotations

from typing import Any

from .errors import CrawlerError

_SCALARS = (str, int, float, bytes)  # bool and None are returned as they are
_MAX_DEPTH = 32


class NotPlainData(CrawlerError):
    """A value a spider yielded cannot cross the wire."""


def plain(value: Any, where: str = "item", depth: int = 0) -> Any:
    """value as plain data (str, int, float and bytes subclasses, such as lxml's smart
    strings, become the base type), or NotPlainData naming where the culprit sits."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth >= _MAX_DEPTH:
        raise NotPlainData(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_key(k, where): plain(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    for base in _SCALARS:
        if isinstance(value, base):
            return base(value)
    raise NotPlainData(f"{where} is a {kind.__module__}.{kind.__qualname__}, not plain data"
                       f"{_hint(kind)}")


def _key(key: Any, where: str) -> str:
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str(key)
    raise NotPlainData(f"{where} has a key {key!r} of type {type(key).__name__}: keys must "
                       "be strings")


def _hint(kind: type) -> str:
    if kind.__name__ in ("Selector", "SelectorList"):
        return " (did you mean .get() or .getall()?)"
    return " (yield dicts of strings, numbers, booleans, None, lists and dicts)"
