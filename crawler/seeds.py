"""Reading the seeds file: one URL a line, blank lines and # comments ignored."""
from __future__ import annotations

from . import urls
from .errors import UsageError


def read_seeds(path: str) -> list[str]:
    """The normalized seed URLs of a file; UsageError naming the first bad line, or the
    file when it holds none (an empty file given on purpose is more likely a mistake
    than a wish for the spider's start_urls, which are used when no file is given)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read seeds file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"seeds file {path} is not UTF-8 text: {exc.reason}") from None
    seeds = parse_seeds(lines, path)
    if not seeds:
        raise UsageError(f"seeds file {path} holds no URLs (without a seeds file, the "
                         "spider's start_urls are used)")
    return seeds


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
