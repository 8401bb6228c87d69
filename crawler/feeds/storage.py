"""Where a feed's text goes: a local file (resumable: cut back to a known good length) or stdout."""
from __future__ import annotations

import logging
import os
from typing import IO

from ..errors import CrawlerError

# Unencodable characters: XML can carry them as references; other formats get "?".
_ERRORS = {"xml": "xmlcharrefreplace"}
log = logging.getLogger(__name__)


def open_file(path: str, fmt: str, encoding: str, mode: str, size: int = 0) -> IO[str]:
    """Open `path` for a feed: mode "w" (new), "a" (append) or "resume" (cut to `size`)."""
    errors = _ERRORS.get(fmt, "replace")
    if mode == "resume":
        actual = os.path.getsize(path) if os.path.exists(path) else -1
        if actual < size:
            raise CrawlerError(f"{path} is shorter than the journal says ({actual} < {size} "
                               "bytes): it was changed; cannot resume")
        os.truncate(path, size)
        mode = "a"
    elif mode == "a" and not _ends_a_line(path):
        # A file cut short (or written by hand) would glue its last line to our first.
        log.warning("%s does not end with a line break: one is added before the new items", path)
        mode = "a+"
    folder = os.path.dirname(path)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        file = open(path, mode, encoding=encoding, errors=errors, newline="")
    except OSError as exc:
        raise CrawlerError(f"cannot open feed {path}: {exc}") from None
    if mode == "a+":
        file.write("\n")
    return file


def _ends_a_line(path: str) -> bool:
    """Whether a file is empty, missing, or ends with a line break."""
    try:
        with open(path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
    except FileNotFoundError:
        return True


def open_stdout(fmt: str, encoding: str) -> IO[str]:
    """Standard output, on a descriptor of its own (closing the feed leaves stdout open)."""
    return os.fdopen(os.dup(1), "w", encoding=encoding, errors=_ERRORS.get(fmt, "replace"),
                     newline="")


def size_of(file: IO[str]) -> int:
    """Bytes the OS holds for an open, flushed file."""
    return os.fstat(file.fileno()).st_size


def count_lines(path: str) -> int:
    """Lines in a file (0 when there is none), read in blocks: a big file costs no memory."""
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
