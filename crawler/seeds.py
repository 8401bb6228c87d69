"""Reading the seeds file: one URL a line, blank lines and # comments ignored.

A seeds file may hold millions of URLs: it is checked line by line before anything starts (a
malformed line is a usage error naming it), keeping nothing but the seeds' origins, and then
read again lazily as the crawl takes its start requests, a batch at a time.
"""
from __future__ import annotations

import logging
import re
from typing import Iterator

from . import urls
from .errors import UsageError

log = logging.getLogger(__name__)
# scheme://authority (the origin as written), then anything without whitespace
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*)\S*")


class SeedFile:
    """The URLs of a checked seeds file, normalized as they are read; iterable more than once
    (each iteration reads the file again). `origins`: every seed's normalized origin."""

    def __init__(self, path: str, origins: set[str], count: int) -> None:
        self.path, self.origins, self.count = path, origins, count

    def __iter__(self) -> Iterator[str]:
        for number, text in _lines(self.path):
            url = urls.normalize(text)
            if url is None:  # the check passed its origin: only its path can be at fault
                log.error("%s:%d: not an http(s) URL: %r; skipped", self.path, number, text)
                continue
            yield url

    def __len__(self) -> int:
        return self.count


def read_seeds(path: str) -> SeedFile:
    """The seeds file, checked: UsageError naming the first bad line, or the file when it
    holds none (an empty file given on purpose is more likely a mistake than a wish for the
    spider's start_urls, which are used when no file is given)."""
    origins: dict[str, str | None] = {}  # as written -> normalized (None: not a URL origin)
    count = 0
    try:
        for number, text in _lines(path):
            if not _looks_valid(text, origins):
                raise UsageError(f"{path}:{number}: not an http(s) URL: {text!r}")
            count += 1
    except OSError as exc:
        raise UsageError(f"cannot read seeds file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"seeds file {path} is not UTF-8 text: {exc.reason}") from None
    if not count:
        raise UsageError(f"seeds file {path} holds no URLs (without a seeds file, the "
                         "spider's start_urls are used)")
    return SeedFile(path, {o for o in origins.values() if o is not None}, count)


def parse_seeds(lines: list[str], name: str = "seeds") -> list[str]:
    """Normalize each URL line; raise UsageError for the first malformed one."""
    seeds = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        url = urls.normalize(text) if " " not in text else None
        if url is None:
            raise UsageError(f"{name}:{number}: not an http(s) URL: {text!r}")
        seeds.append(url)
    return seeds


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of each line holding a URL."""
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, text


def _looks_valid(text: str, origins: dict[str, str | None]) -> bool:
    """Without normalizing the whole URL (a few microseconds each, millions of lines): no
    whitespace inside, and an origin that normalizes (each distinct one normalized once)."""
    match = _URL.fullmatch(text)
    if match is None:
        return False
    written = match.group(1)
    if written not in origins:
        url = urls.normalize(written + "/")
        origins[written] = url[:url.find("/", 8)] if url is not None else None
    return origins[written] is not None
