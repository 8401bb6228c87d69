"""Feed formats: how items become text (JSON lines, a JSON array, CSV, XML).

A format writes text only: a new file's opening (`start`), one piece per item, a
closing (`end`). The text up to the end of the last whole item is always a prefix
a resumed feed can be cut back to, then continued and closed again.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from typing import Any
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)
# Feed format names, with the aliases accepted for them.
NAMES = {"jsonlines": "jsonlines", "jsonl": "jsonlines", "jl": "jsonlines", "json": "json",
         "csv": "csv", "xml": "xml"}
EXTENSIONS = {".jsonl": "jsonlines", ".jl": "jsonlines", ".jsonlines": "jsonlines",
              ".json": "json", ".csv": "csv", ".xml": "xml"}


class Format:
    """Base: every item as it comes (or only `fields`, renamed as mapped)."""

    appendable = False  # an existing file may simply be appended to

    def __init__(self, fields: dict[str, str] | None = None, encoding: str = "utf-8") -> None:
        self.fields, self.encoding = fields, encoding

    def start(self) -> str:
        return ""

    def resume(self, path: str, count: int) -> None:
        """Continue a file that holds `count` items."""

    def item(self, item: dict[str, Any], count: int) -> str:
        raise NotImplementedError

    def end(self) -> str:
        return ""

    def select(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            return item
        return {name: item[key] for key, name in self.fields.items() if key in item}


class _Json(Format):
    def __init__(self, fields: dict[str, str] | None = None, encoding: str = "utf-8") -> None:
        super().__init__(fields, encoding)
        # One encoder for every item: json.dumps with options builds one per call.
        ascii_only = not encoding.lower().replace("_", "-").startswith("utf")
        self._encode = json.JSONEncoder(ensure_ascii=ascii_only, default=str,
                                        allow_nan=False).encode

    def encode(self, item: dict[str, Any]) -> str:
        """JSON text; NaN and infinities become null (JSON has no such numbers)."""
        try:
            return self._encode(self.select(item))
        except ValueError:
            return self._encode(_finite(self.select(item)))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class JsonLines(_Json):
    appendable = True

    def item(self, item: dict[str, Any], count: int) -> str:
        return self.encode(item) + "\n"


class JsonArray(_Json):
    def start(self) -> str:
        return "["

    def item(self, item: dict[str, Any], count: int) -> str:
        return ("\n" if count == 0 else ",\n") + self.encode(item)

    def end(self) -> str:
        return "\n]\n"


class Csv(Format):
    """Columns are FEED_EXPORT_FIELDS, else the first item's keys; a header line first."""

    def __init__(self, fields: dict[str, str] | None = None, encoding: str = "utf-8") -> None:
        super().__init__(fields, encoding)
        self._keys = list(fields) if fields else None
        self._header = list(fields.values()) if fields else None
        self._warned = False
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def resume(self, path: str, count: int) -> None:
        if count and self._keys is None:
            with open(path, encoding=self.encoding, newline="") as f:
                self._keys = self._header = next(csv.reader(f))

    def item(self, item: dict[str, Any], count: int) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        if self._keys is None:
            self._keys = self._header = list(item)
        if count == 0:
            self._writer.writerow(self._header)
        extra = set(item) - set(self._keys)
        if extra and not self._warned and self.fields is None:
            self._warned = True
            log.warning("CSV columns are fixed by the first item (or FEED_EXPORT_FIELDS); "
                        "dropping %s", sorted(extra))
        self._writer.writerow(["" if item.get(k) is None else item[k] for k in self._keys])
        return self._buffer.getvalue()


# Characters XML 1.0 cannot hold at all, and what may not appear in an element name.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NOT_NAME = re.compile(r"[^\w.-]")


class Xml(Format):
    """<items><item><field>value</field>...</item>...</items>; lists as <value> children."""

    def start(self) -> str:
        return f'<?xml version="1.0" encoding="{self.encoding}"?>\n<items>'

    def item(self, item: dict[str, Any], count: int) -> str:
        return "\n<item>" + "".join(_element(k, v) for k, v in self.select(item).items()) + \
            "</item>"

    def end(self) -> str:
        return "\n</items>\n"


def _element(name: Any, value: Any) -> str:
    tag = _NOT_NAME.sub("_", str(name))
    if not tag or not (tag[0].isalpha() or tag[0] == "_"):
        tag = "_" + tag
    if isinstance(value, dict):
        inner = "".join(_element(k, v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        inner = "".join(_element("value", v) for v in value)
    else:
        inner = "" if value is None else escape(_NOT_XML.sub("", str(value)))
    return f"<{tag}>{inner}</{tag}>"


CLASSES: dict[str, type[Format]] = {"jsonlines": JsonLines, "json": JsonArray, "csv": Csv,
                                    "xml": Xml}
