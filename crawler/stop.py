"""`python -m crawler.stop HOST:PORT`: end a running crawl cleanly, as SIGTERM does.

The master hands out no more work, waits for the work in flight, writes its summary and
exits; with a JOBDIR, what was still queued is kept for a resume.
"""
from __future__ import annotations

import sys

from .link import remote


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2: bad key, 1: no master there)."""
    args = remote.parser("python -m crawler.stop", "End a running crawl cleanly.").parse_args(argv)

    def body() -> int:
        reply = remote.connect(args).stop()
        print(f"the crawl at {args.master} is closing ({reply['closing']})")
        return 0

    return remote.run(body)


if __name__ == "__main__":
    sys.exit(main())
