"""The plain-data protocol: what may travel between master and workers.

Tasks, results and items are plain data: None, bools, numbers, strings, bytes, and lists,
tuples and dicts of them (items' and meta's keys are strings). Whatever a spider yields is
checked here where it is made, on the worker, so a mistake fails its page instead of the
batch (or the worker) it would travel in.
"""
from __future__ import annotations

import io
import logging
import pickle
from typing import Any

from ..errors import CrawlerError

log = logging.getLogger(__name__)

_SCALARS = (str, int, float, bytes)  # bool and None are returned as they are
_MAX_DEPTH = 32


class NotPlainData(CrawlerError):
    """A value a spider yielded cannot cross the wire."""


class ProtocolError(CrawlerError):
    """A peer sent what the protocol does not allow: a pickle naming a class or function
    (which could run code here), or a message of the wrong shape."""


# The globals a message may name: none. What the manager protocol itself sends is plain
# data (requests are (id, method, args, kwargs) tuples, replies ('#RETURN', value) or
# ('#TRACEBACK', text) pairs); the one place where it would pickle a class, an exception
# raised by a master method ('#ERROR', exc), is turned into text by the master before
# it is sent (crawler.manager), and Tokens travel only for methods returning proxies,
# which nothing registered has. Sets, frozensets, tuples and bytes have opcodes of
# their own and need no global.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset()


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise ProtocolError(f"the message names {module}.{name}, and only plain data "
                            "may cross the wire")

    def persistent_load(self, pid: Any) -> Any:
        raise ProtocolError("the message holds a persistent id, and only plain data may "
                            "cross the wire")


def loads(data: bytes | memoryview) -> Any:
    """Unpickle a message from a peer: plain data only. ProtocolError for a pickle that
    names any class or function (pickle would import and call it: run code here), and
    for one that is not a pickle at all."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except ProtocolError:
        raise
    except Exception as exc:  # truncated, or not a pickle: what a broken peer sends
        raise ProtocolError(f"the message is not a valid pickle ({exc!r:.200})") from None


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
