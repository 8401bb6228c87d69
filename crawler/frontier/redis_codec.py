"""Tasks and items as Redis holds them: restricted pickle, which carries bytes, tuples and
the other plain types of crawler.link.wire, and never builds an object of any class, so a Redis
that someone else can write to cannot make a worker or the master run code."""
from __future__ import annotations

import io
import pickle
from typing import Any

from ..errors import CrawlerError

_QUEUE_FIELDS = ("url", "host", "attempt")  # kept in the member's text, not the blob
# A pseudo-item of a download's result: the files for the master to store (MEDIA_WRITTEN_BY=
# master), {"fp", "media", "blobs"}, which ride in the items stream to it.
MEDIA_FILES = "__media_files__"


class BadData(CrawlerError):
    """Redis held something this crawler did not write."""


class _Plain(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise BadData(f"refused to load {module}.{name} from Redis: not plain data")


def pack(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def unpack(data: bytes) -> Any:
    try:
        return _Plain(io.BytesIO(data)).load()
    except BadData:
        raise
    except Exception as exc:
        raise BadData(f"unreadable data in Redis: {exc!r}") from None


def pack_member(task: dict[str, Any], max_retries: int) -> bytes:
    """A queued task: attempt TAB max retries TAB host TAB url TAB blob (see common.lua);
    a media task's max retries is followed by "m" and its fingerprint in hex."""
    rest = {k: v for k, v in task.items() if k not in _QUEUE_FIELDS}
    media = b"m" + task["fp"].hex().encode() if task.get("kind") == "media" else b""
    return b"%d\t%d%s\t%s\t%s\t" % (task.get("attempt", 0), max_retries, media,
                                    task["host"].encode(), task["url"].encode()) + pack(rest)


def media_outcome(value: bytes) -> dict[str, Any]:
    """A download's outcome as the hash "media" keeps it: {"checksum", "status"} or
    {"reason"} (as crawler.pipelines.downloads gives it)."""
    kind, _, rest = value.decode("utf-8", "replace").partition("\t")
    if kind == "done":
        status, _, checksum = rest.partition("\t")
        return {"checksum": checksum, "status": status}
    return {"reason": rest or "failed"}


def unpack_member(member: bytes) -> dict[str, Any]:
    attempt, _, host, url, blob = member.split(b"\t", 4)
    task = unpack(blob)
    task["url"], task["host"] = url.decode(), host.decode()
    if attempt != b"0":
        task["attempt"] = int(attempt)
    return task
