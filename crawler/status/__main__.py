"""`python -m crawler.status JOBDIR|STATS_FILE [--html FILE]`: a finished (or stopped)
crawl's summary, and its status page as one static HTML file."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .page import static
from .summary import summary_lines


def load(path: str) -> dict[str, Any]:
    """The snapshot in a stats file, or in JOBDIR/stats.json; ValueError saying why not."""
    if os.path.isdir(path):
        path = os.path.join(path, "stats.json")
    try:
        with open(path, encoding="utf-8") as f:
            snap = json.load(f)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a stats file ({exc})") from None
    if not isinstance(snap, dict) or "schema" not in snap:
        raise ValueError(f"{path}: not a stats file written by this crawler's master")
    return snap


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crawler.status",
                                description="Show what a crawl did, from its stats.json.")
    p.add_argument("path", help="a JOBDIR or a stats file (--stats FILE of the master)")
    p.add_argument("--html", metavar="FILE", help="also write the status page to FILE")
    args = p.parse_args(argv)
    try:
        snap = load(args.path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(snap)))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(static(snap))
        print(f"status page written to {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
