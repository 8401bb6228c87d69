"""What code a process runs, as shown in the workers table: the package version and a hash
of the crawler package's source (so a host with edited or stale code stands out)."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import crawler


@lru_cache(maxsize=1)
def code_version() -> str:
    """E.g. "0.1.0+3f2a9c1d"."""
    digest = hashlib.sha256()
    root = Path(crawler.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"{crawler.__version__}+{digest.hexdigest()[:8]}"
