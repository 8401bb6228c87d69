"""WARC output (WARC_OUTPUT or -o crawl.warc.gz): every fetch as a request record and a
response record (a revisit record for a recrawl's 304), each gzipped on its own, with warcio.

The records are made on the worker that fetched (`records`), so the master only appends
bytes: they travel in the result as one blob of gzip members (the compressed record, about
a third of the page; only when WARC output is on). On the master they ride through the sink
like items (`{RECORDS: blob}`, which only the WARC feed takes), so the journal holds them
until the file does and a killed master resumes with the file cut back to its last recorded
length, as the other feeds: every record is in the output exactly once.
Files are rotated at WARC_MAX_SIZE: crawl.warc.gz, then crawl-00001.warc.gz, ...
"""
from __future__ import annotations

import io
import os
import re
from typing import Any

from ..errors import CrawlerError, UsageError
from .spec import FeedSpec

RECORDS = "__warc_records__"  # the key of the pseudo-item carrying a fetch's records
SERVER_NOT_MODIFIED = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
_SERIAL = re.compile(r"-(\d{5})(\.warc\.gz)\Z", re.I)


def is_warc(path: str) -> bool:
    """Whether an -o path asks for WARC output."""
    return path.lower().endswith(".warc.gz")


def require_warcio() -> Any:
    """warcio's writer module, or UsageError saying how to install it."""
    try:
        from warcio import warcwriter
    except ImportError:
        raise UsageError("WARC output needs warcio on the master and every worker: "
                         "pip install 'crawler[warc]'") from None
    return warcwriter


def records(url: str, exchange: Any, revisit: bool = False) -> bytes:
    """The gzipped request and response (or, for a revisit answered 304, revisit) records
    of one exchange (crawler.http.fetcher.Exchange)."""
    warcwriter = require_warcio()
    out = io.BytesIO()
    writer = warcwriter.WARCWriter(out, gzip=True, warc_version="1.1")
    kind = "revisit" if revisit else "response"
    payload = exchange.response_head + exchange.response_body
    headers = {"WARC-Profile": SERVER_NOT_MODIFIED} if revisit else {}
    response = writer.create_warc_record(url, kind, payload=io.BytesIO(payload),
                                         length=len(payload), warc_headers_dict=headers)
    request = writer.create_warc_record(
        url, "request", payload=io.BytesIO(exchange.request), length=len(exchange.request),
        warc_headers_dict={"WARC-Concurrent-To": response.rec_headers["WARC-Record-ID"],
                           "WARC-Date": response.rec_headers["WARC-Date"]})
    writer.write_record(request)
    writer.write_record(response)
    return out.getvalue()


class WarcFeed:
    """The WARC file(s) of a crawl: takes the record blobs the sink hands it, in order.

    `resume=(size, count)` continues the file `path` known good up to `size` bytes."""

    resumable = True
    held_before = 0

    def __init__(self, spec: FeedSpec, path: str, resume: tuple[int, int] | None = None,
                 max_size: int = 1 << 30) -> None:
        self.spec, self.key, self.max_size = spec, spec.key, max_size
        self.path = path
        match = _SERIAL.search(path)
        self.serial = int(match.group(1)) if match else 0
        self.base = path[:match.start()] + match.group(2) if match else path
        self.count = resume[1] if resume else 0
        if resume is not None:
            self._open(path, "resume", resume[0])
        else:
            self._open(path, "wb" if spec.overwrite else "ab")

    def _open(self, path: str, mode: str, size: int = 0) -> None:
        try:
            folder = os.path.dirname(path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            if mode == "resume":
                if not os.path.exists(path) or os.path.getsize(path) < size:
                    raise CrawlerError(f"{path} is shorter than the journal says: it was "
                                       "changed; cannot resume")
                os.truncate(path, size)
                mode = "ab"
            self.file = open(path, mode)
        except OSError as exc:
            raise CrawlerError(f"cannot open WARC output {path}: {exc}") from None
        self.path, self.size = path, self.file.tell()
        if self.size == 0:
            self._write(_warcinfo(os.path.basename(path)))

    def write(self, item: dict[str, Any]) -> None:
        data = item[RECORDS]
        if self.size and self.size + len(data) > self.max_size:
            self._rotate()
        self._write(data)
        self.count += 1

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def _rotate(self) -> None:
        """Close this file, begin the next one (from empty: what a crash left of it is
        written again)."""
        self.file.close()
        self.serial += 1
        stem, ext = _split(self.base)
        self._open(f"{stem}-{self.serial:05d}{ext}", "wb")

    def flush(self) -> tuple[int, int]:
        self.file.flush()
        return self.size, self.count

    def close(self) -> None:
        self.file.close()


def _split(path: str) -> tuple[str, str]:
    return path[:-len(".warc.gz")], path[-len(".warc.gz"):]


def _warcinfo(filename: str) -> bytes:
    warcwriter = require_warcio()
    out = io.BytesIO()
    writer = warcwriter.WARCWriter(out, gzip=True, warc_version="1.1")
    writer.write_record(writer.create_warcinfo_record(filename, {
        "software": "crawler", "format": "WARC File Format 1.1",
        "conformsTo": "https://iipc.github.io/warc-specifications/specifications/"
                      "warc-format/warc-1.1/"}))
    return out.getvalue()
