"""The shared secret. Anyone holding it can run code on the master and every worker
(the wire format is pickle), so it is random per crawl and kept in a 0600 file."""
from __future__ import annotations

import os
import secrets
import stat

from ..errors import UsageError

ENV_VAR = "CRAWLER_AUTHKEY_FILE"


def create(path: str) -> bytes:
    """Write a new random 32-byte key (hex) to path, readable by its owner only."""
    key = secrets.token_hex(32).encode()
    # Written aside, then linked into place: a worker waiting for the file never
    # sees it empty, and an existing key is never replaced.
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
        os.link(temp, path)
    finally:
        os.unlink(temp)
    return key


def read(path: str) -> bytes:
    """The key in path; UsageError when missing, empty or readable by others."""
    try:
        mode = os.stat(path).st_mode
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError as exc:
        raise UsageError(f"authkey file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"authkey file {path} is readable by group or others; "
                         f"run: chmod 600 {path}")
    if len(key) < 16:
        raise UsageError(f"authkey file {path} holds no usable key (16 bytes at least)")
    return key


def read_or_create(path: str) -> bytes:
    """The master's rule: use an existing key file, else make one."""
    if os.path.exists(path):
        return read(path)
    return create(path)
