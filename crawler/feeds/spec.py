"""Which feeds a crawl writes: from -o/-O or the FEEDS setting, checked before anything starts."""
from __future__ import annotations

import codecs
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .formats import CLASSES, EXTENSIONS, NAMES

STDOUT = "stdout:"
_OPTIONS = {"format", "fields", "encoding", "overwrite"}
_PARAM = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class FeedSpec:
    """One feed as asked for: its URI (a path that may hold %(name)s or %(time)s, or
    `stdout:`), format, fields ({field: output name} or None for all), encoding."""

    uri: str
    format: str
    fields: dict[str, str] | None = None
    encoding: str = "utf-8"
    overwrite: bool = False

    @property
    def key(self) -> str:
        """What names this feed in the journal: the URI, a path made absolute."""
        return self.uri if self.uri == STDOUT else os.path.abspath(self.uri)

    def render(self, params: dict[str, Any]) -> str:
        """The path (or `stdout:`) with %(...)s parameters filled in."""
        def value(match: re.Match) -> str:
            if match.group(1) not in params:
                raise UsageError(f"feed {self.uri}: unknown URI parameter %({match.group(1)})s "
                                 "(use %(name)s, %(time)s or a spider attribute)")
            return str(params[match.group(1)])
        return _PARAM.sub(value, self.uri)


def from_cli(outputs: list[tuple[str, bool]], settings: dict[str, Any]) -> list[FeedSpec]:
    """-o FILE[:FORMAT] (append) and -O FILE[:FORMAT] (overwrite) as FeedSpecs."""
    feeds = []
    for given, overwrite in outputs:
        uri, fmt = given, None
        head, sep, tail = given.rpartition(":")
        if sep and head and re.fullmatch(r"[A-Za-z0-9]+", tail):
            uri, fmt = head, tail
        feeds.append(_spec("-o" if not overwrite else "-O", uri,
                           {"format": fmt, "overwrite": overwrite}, settings))
    return feeds


def from_settings(settings: dict[str, Any]) -> list[FeedSpec]:
    """The FEEDS setting as FeedSpecs."""
    feeds = settings["FEEDS"]
    if not isinstance(feeds, dict):
        raise UsageError("FEEDS: expected a dict of {uri: {options}}")
    specs = []
    for uri, options in feeds.items():
        if not isinstance(options, dict):
            raise UsageError(f"FEEDS[{uri!r}]: expected a dict of options")
        unknown = set(options) - _OPTIONS
        if unknown:
            raise UsageError(f"FEEDS[{uri!r}]: unsupported options {sorted(unknown)}; "
                             f"use {sorted(_OPTIONS)}")
        specs.append(_spec(f"FEEDS[{uri!r}]", str(uri), options, settings))
    return specs


def _spec(where: str, uri: str, options: dict[str, Any], settings: dict[str, Any]) -> FeedSpec:
    uri = STDOUT if uri in ("-", STDOUT) else uri.removeprefix("file://")
    if re.match(r"[A-Za-z][\w+.-]+:", uri) and uri != STDOUT:
        raise UsageError(f"{where}: unsupported storage {uri.split(':')[0]}: (use a file "
                         "path or stdout:)")
    fmt = options.get("format") or _by_extension(where, uri)
    if str(fmt).lower() not in NAMES:
        raise UsageError(f"{where}: unknown format {fmt!r}; use one of {', '.join(CLASSES)}")
    overwrite = options.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise UsageError(f"{where}: overwrite must be true or false")
    encoding = _encoding(where, options.get("encoding", settings["FEED_EXPORT_ENCODING"]))
    fields = _fields(where, options.get("fields", settings["FEED_EXPORT_FIELDS"]))
    return FeedSpec(uri, NAMES[str(fmt).lower()], fields, encoding, overwrite)


def _by_extension(where: str, uri: str) -> str:
    if uri == STDOUT:
        return "jsonlines"
    ext = os.path.splitext(uri)[1].lower()
    if ext not in EXTENSIONS:
        raise UsageError(f"{where} {uri}: unknown format {ext or '(no extension)'}; name one "
                         f"({', '.join(CLASSES)}) or use one of {', '.join(EXTENSIONS)}")
    return EXTENSIONS[ext]


def _encoding(where: str, encoding: Any) -> str:
    try:
        codecs.lookup(str(encoding))
        return str(encoding)
    except LookupError:
        raise UsageError(f"{where}: unknown encoding {encoding!r}") from None


def _fields(where: str, fields: Any) -> dict[str, str] | None:
    if fields is None:
        return None
    if isinstance(fields, str):
        text = fields.strip()
        fields = json.loads(text) if text[:1] in "[{" and text else \
            [f.strip() for f in text.split(",") if f.strip()]
    if isinstance(fields, (list, tuple)) and all(isinstance(f, str) for f in fields):
        return {f: f for f in fields}
    if isinstance(fields, dict) and all(isinstance(v, str) for v in fields.values()):
        return {str(k): v for k, v in fields.items()}
    raise UsageError(f"{where}: fields must be a list of names or a {{field: name}} dict")


def uri_params(spider: Any) -> dict[str, Any]:
    """%(name)s, %(time)s (UTC, colons as dashes) and the spider's other attributes."""
    params = {k: v for k, v in vars(spider).items() if not k.startswith("_")}
    params["name"] = spider.name
    params["time"] = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    return params


def check_new(spec: FeedSpec, path: str) -> None:
    """Refuse an existing file that cannot be appended to, unless overwriting."""
    if path != STDOUT and os.path.exists(path) and not spec.overwrite and \
            not CLASSES[spec.format].appendable:
        raise UsageError(f"{path} exists and a {spec.format} feed cannot be appended to; "
                         "give -O (or --overwrite) to replace it")


def identity(specs: list[FeedSpec]) -> str:
    """The feeds as a resumed crawl must ask for them again."""
    return json.dumps(sorted(f"{s.key} {s.format}" for s in specs))
