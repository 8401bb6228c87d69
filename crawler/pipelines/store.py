"""Where media files go: a local folder, or any fsspec URL (s3://, gcs://, memory://...).

Every file is written atomically: to a temporary name next to it, then renamed, so a
reader (or a crash) never sees half a file.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

from ..errors import UsageError


class Store:
    """A local folder."""

    def __init__(self, root: str) -> None:
        self.root = root

    def persist(self, path: str, data: bytes) -> None:
        """Write `data` at `path` (relative to the store), atomically."""
        final = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        temp = f"{final}.{uuid.uuid4().hex}.tmp"
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, final)

    def stat(self, path: str) -> tuple[float, str] | None:
        """(seconds since the file was written, md5 of its bytes), or None without one."""
        try:
            with open(os.path.join(self.root, path), "rb") as f:
                age = time.time() - os.fstat(f.fileno()).st_mtime
                return age, hashlib.file_digest(f, "md5").hexdigest()
        except FileNotFoundError:
            return None


class FsspecStore(Store):
    """Any filesystem fsspec knows, named by URL."""

    def __init__(self, uri: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise UsageError(f"store {uri!r} needs fsspec: pip install fsspec (and its "
                             "driver for that protocol, such as s3fs)") from None
        try:
            self.fs, root = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise UsageError(f"store {uri!r}: {exc}") from None
        super().__init__(root.rstrip("/"))
        self._folders: set[str] = set()  # made already (a call each on some filesystems)

    def persist(self, path: str, data: bytes) -> None:
        final = f"{self.root}/{path}"
        folder = final.rpartition("/")[0]
        if folder not in self._folders:
            self.fs.makedirs(folder, exist_ok=True)  # object stores: nothing to do
            self._folders.add(folder)
        temp = f"{final}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(temp, data)
        self.fs.mv(temp, final)

    def stat(self, path: str) -> tuple[float, str] | None:
        final = f"{self.root}/{path}"
        try:
            info = self.fs.info(final)
        except FileNotFoundError:
            return None
        return _age(info), hashlib.md5(self.fs.cat_file(final)).hexdigest()


def _age(info: dict[str, Any]) -> float:
    """Seconds since the file was written, from whichever time fsspec's driver gives."""
    for key in ("mtime", "created", "LastModified", "last_modified", "updated"):
        value = info.get(key)
        if value is None:
            continue
        stamp = value.timestamp() if hasattr(value, "timestamp") else float(value)
        return time.time() - stamp
    return 0.0  # no time known: count it as new (it is not refetched)


def open_store(uri: str) -> Store:
    """The store for FILES_STORE/IMAGES_STORE: a URL with a scheme is fsspec's, else a
    local folder."""
    if "://" in uri:
        return FsspecStore(uri)
    return Store(os.path.abspath(uri))
