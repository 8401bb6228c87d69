"""`python -m crawler.demo [master options]`: serve a generated site on 127.0.0.1 and crawl it
with the master and local workers, to see the whole thing work on a new machine."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from . import master
from .sitegen import Site, SiteServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.demo", description=__doc__)
    parser.add_argument("--pages", type=int, default=500, help="books on the generated site")
    args, rest = parser.parse_known_args(argv)
    server = SiteServer(Site(pages=args.pages)).start()
    print(f"demo site: {server.url} ({args.pages} books)", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seeds = os.path.join(tmp, "seeds.txt")
            with open(seeds, "w") as f:
                f.write(server.url + "\n")
            if not any(a in ("--workers",) or a.startswith("--workers=") for a in rest):
                rest += ["--workers", "2"]
            return master.main([seeds, *rest])
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())
