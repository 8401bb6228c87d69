"""`python -m crawler.add HOST:PORT URL... | -f FILE`: add start URLs to a running crawl.

They go through dedup and politeness like any other URL; a crawl started with
--keep-running waits for them when it has nothing else to do.
"""
from __future__ import annotations

import sys

from .link import remote
from .errors import UsageError
from .seeds import parse_seeds, read_seeds


def _urls(args) -> list[str]:
    urls = parse_seeds(args.urls, "command line")
    if args.file == "-":
        urls += parse_seeds(sys.stdin.read().splitlines(), "standard input")
    elif args.file:
        urls += read_seeds(args.file)
    if not urls:
        raise UsageError("no URLs: give some after HOST:PORT, or -f FILE")
    return urls


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2: bad URLs or key, 1: no master there)."""
    p = remote.parser("python -m crawler.add", "Add start URLs to a running crawl.")
    p.add_argument("urls", nargs="*", metavar="URL")
    p.add_argument("-f", "--file", help="file of URLs, one a line (- for standard input)")
    args = p.parse_intermixed_args(argv)  # URLs may come before or after the options

    def body() -> int:
        urls = _urls(args)  # every one checked before any is sent
        crawl = remote.connect(args)
        added = known = 0
        refused: list = []
        for start in range(0, len(urls), remote.BATCH):
            reply = crawl.add(urls[start:start + remote.BATCH])
            if reply["closing"]:
                print(f"error: the crawl is closing ({reply['closing']}); "
                      f"{added} URLs were added before", file=sys.stderr)
                return 1
            added, known, refused = added + reply["added"], known + reply["known"], \
                refused + reply["refused"]
        print(f"{added} URLs added, {known} already known, {len(refused)} refused")
        for url, problem in refused:
            print(f"  refused {url}: {problem}", file=sys.stderr)
        return 2 if refused else 0

    return remote.run(body)


if __name__ == "__main__":
    sys.exit(main())
