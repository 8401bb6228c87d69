"""Try selectors on a page: `python -m crawler.shell URL [-s NAME=VALUE] [--nolog] [-c CODE]`.

Fetches URL with the crawl's own fetcher and settings (project settings.py, then -s), then
opens a Python session (IPython when installed) with `response`, `fetch(url_or_request)`
and `view()`. `-c CODE` runs CODE with those names instead and exits (for scripts).
"""
from __future__ import annotations

import argparse
import code
import logging
import sys
import tempfile
from typing import Any

from . import config, urls
from .errors import CrawlerError, UsageError
from .http.fetcher import FetchConfig, Fetcher
from .http.request import Request
from .http.response import Response
from .spider.rules import REDIRECTS

log = logging.getLogger(__name__)


class Shell:
    """The session's state: settings, a fetcher trusting the hosts asked for, the response."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.trusted: set[str] = set()
        self.fetcher: Fetcher | None = None
        self.response: Response | None = None
        self.namespace: dict[str, Any] = {"response": None, "fetch": self.fetch, "view": self.view,
                                          "settings": settings, "Request": Request}

    def fetch(self, target: str | Request) -> Response | None:
        """Fetch a URL or Request (following redirects) into `response`; on failure print
        why and keep the previous response."""
        request = target if isinstance(target, Request) else Request(str(target))
        self._trust(urls.host_of(request.url))
        try:
            response = self._follow(request)
        except CrawlerError as exc:
            print(f"fetch failed: {exc}", file=sys.stderr)
            return None
        self.response = self.namespace["response"] = response
        print(f"[{response.status}] {response.url}")
        return response

    def _trust(self, host: str) -> None:
        if self.fetcher is None or host not in self.trusted:
            self.trusted.add(host)
            self.fetcher = Fetcher(FetchConfig.from_settings(self.settings, self.trusted))

    def _follow(self, request: Request) -> Response:
        response = self.fetcher.fetch(request)
        for _ in range(self.settings["REDIRECT_MAX_TIMES"]):
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                break
            response = self.fetcher.fetch(Request(response.urljoin(location)))
        return response

    def view(self, response: Response | None = None) -> str | None:
        """Write the page to a temporary file (to open in a browser); print and return its path."""
        response = response or self.response
        if response is None:
            print("nothing fetched yet", file=sys.stderr)
            return None
        suffix = ".html" if response.is_html else ".txt"
        with tempfile.NamedTemporaryFile("wb", prefix="crawler-view-", suffix=suffix,
                                         delete=False) as f:
            f.write(response.body)
        print(f.name)
        return f.name


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m crawler.shell",
                                description="Fetch a page and try selectors on it.")
    p.add_argument("url", help="the page to fetch (http or https)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a setting")
    p.add_argument("-c", dest="code", metavar="CODE",
                   help="run CODE with response, fetch() and view(), then exit")
    p.add_argument("--nolog", action="store_true", help="no log messages")
    return p.parse_args(argv)


def _interact(namespace: dict[str, Any]) -> None:
    banner = ("crawler shell: response, fetch(url_or_request), view(), settings, Request; "
              "Ctrl-D to leave")
    try:
        import IPython
    except ImportError:
        code.interact(banner=banner, local=namespace)
    else:
        print(banner)
        IPython.start_ipython(argv=[], user_ns=namespace)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _args(argv)
    try:
        settings = config.merge(config.load_module_settings("settings.py"),
                                strict=[config.parse_overrides(args.set)])
        if urls.normalize(args.url) is None:
            raise UsageError(f"not an http(s) URL: {args.url!r}")
        shell = Shell(settings)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL + 1 if args.nolog else
                        settings["LOG_LEVEL"].upper(),
                        format="%(asctime)s shell %(levelname)s %(name)s: %(message)s")
    shell.fetch(urls.normalize(args.url))
    if args.code is None:
        _interact(shell.namespace)
        return 0
    exec(compile(args.code, "<-c>", "exec"), shell.namespace)  # the user's own code
    return 0


if __name__ == "__main__":
    sys.exit(main())
