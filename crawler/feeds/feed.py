"""One feed: a format writing to its storage, with how far the output is known good."""
from __future__ import annotations

import logging
import os
from typing import Any

from . import storage
from .formats import CLASSES
from .spec import STDOUT, FeedSpec

log = logging.getLogger(__name__)


class Feed:
    """Writes items to one file (or stdout) in one format.

    `resume=(size, count)` continues a file known good up to `size` bytes holding `count`
    items: what follows (a write torn by a crash, or a closing `]`) is cut off first.
    """

    def __init__(self, spec: FeedSpec, path: str, resume: tuple[int, int] | None = None) -> None:
        self.spec, self.path, self.key = spec, path, spec.key
        self.format = CLASSES[spec.format](spec.fields, spec.encoding)
        self.count = 0
        self.held_before = 0  # items an appended file held before this crawl's
        if path == STDOUT:
            self.file = storage.open_stdout(spec.format, spec.encoding)
            self.file.write(self.format.start())
        elif resume is not None:
            self.file = storage.open_file(path, spec.format, spec.encoding, "resume", resume[0])
            self.format.resume(path, resume[1])
            self.count = resume[1]
        else:
            append = self.format.appendable and not spec.overwrite
            self.held_before = storage.count_lines(path) if append else 0
            self.file = storage.open_file(path, spec.format, spec.encoding,
                                          "a" if append else "w")
            self.file.write(self.format.start())
        # (bytes, items) known whole: what abandon() cuts the file back to
        self.good = (storage.size_of(self.file) if self.resumable else -1, self.count)

    @property
    def resumable(self) -> bool:
        """Whether the output can be cut back on resume (stdout cannot)."""
        return self.path != STDOUT

    def write(self, item: dict[str, Any]) -> None:
        self.file.write(self.format.item(item, self.count))
        self.count += 1

    def flush(self) -> tuple[int, int]:
        """Push written items to the OS; (the file's size in bytes, items in it)."""
        self.file.flush()
        self.good = (storage.size_of(self.file) if self.resumable else -1), self.count
        return self.good

    def abandon(self) -> None:
        """Close after a failed write (a full disk): what is not flushed is given up, and a
        file is cut back to the last flush, so it ends with a whole item."""
        try:
            self.file.close()  # its flush may fail again; the file is closed all the same
        except OSError:
            pass
        if self.resumable:
            try:
                os.truncate(self.path, self.good[0])
            except OSError as exc:
                log.error("cannot cut %s back to its last whole item: %s", self.path, exc)
        self.count = self.good[1]

    def close(self) -> None:
        self.file.write(self.format.end())
        self.file.close()
