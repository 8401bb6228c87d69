"""Micro-benchmark: the link step of one page with 100 links (a generated book page).

Compares, on an already parsed page (parsing is the same for all and not timed):
  generic      the generic spider's link path: its compiled XPath + response.follow_all()
  extractor    LinkExtractor().extract_links(response)
  crawlspider  a CrawlSpider with Rule(): extract_links + one Request per link
  scrapy       Scrapy's LinkExtractor().extract_links(response), when Scrapy is installed

    python bench/links.py [--pages 2000] [--repeat 5] [--json out.json]

Prints microseconds per page (the best of the repeats: the machine is shared) and per link. Nothing leaves the process.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Callable

from crawler import CrawlSpider, GenericSpider, LinkExtractor, Response, Rule
from crawler.sitegen import Site

URL = "http://127.0.0.1:8000/book/{}.html"


def pages(count: int) -> list[bytes]:
    """Book pages of ~8 KB, each with 99 related links and one home link."""
    site = Site(pages=1000, links=99, size_kb=8)
    return [site.render(f"/book/{i % 1000}.html")[2] for i in range(count)]


def ours(bodies: list[bytes]) -> list[Response]:
    responses = [Response(URL.format(i), 200, {"Content-Type": "text/html; charset=utf-8"}, b)
                 for i, b in enumerate(bodies)]
    for response in responses:
        response.selector  # parsed before timing: every path needs it
    return responses


def timed(step: Callable, responses: list) -> tuple[float, int]:
    """(total seconds of step over the responses, links of the first)."""
    links = len(step(responses[0]))
    started = time.perf_counter()
    for response in responses:
        step(response)
    return time.perf_counter() - started, links


def steps() -> dict[str, Callable]:
    generic = GenericSpider()
    _, links_of = generic._xpaths()
    extractor = LinkExtractor()

    class Follow(CrawlSpider):
        name = "follow"
        rules = [Rule(LinkExtractor())]

    crawl = Follow()
    return {
        "generic": lambda r: list(r.follow_all(links_of(r.selector.root))),
        "extractor": extractor.extract_links,
        "crawlspider": lambda r: list(crawl._requests_to_follow(r)),
    }


def scrapy_step() -> tuple[Callable, Callable] | None:
    try:
        from scrapy.http import HtmlResponse
        from scrapy.linkextractors import LinkExtractor as ScrapyLinkExtractor
    except ImportError:
        return None

    def prepare(bodies: list[bytes]) -> list:
        responses = [HtmlResponse(URL.format(i), body=b, encoding="utf-8")
                     for i, b in enumerate(bodies)]
        for response in responses:
            response.selector
        return responses

    return ScrapyLinkExtractor().extract_links, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    bodies = pages(args.pages)
    runs: dict[str, list[float]] = {}
    links: dict[str, int] = {}
    scrapy = scrapy_step()
    for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
        for name, step in steps().items():
            seconds, links[name] = timed(step, ours(bodies))
            runs.setdefault(name, []).append(seconds)
        if scrapy is not None:
            step, prepare = scrapy
            seconds, links["scrapy"] = timed(step, prepare(bodies))
            runs.setdefault("scrapy", []).append(seconds)
    if scrapy is None:
        print("scrapy: not installed (pip install -e '.[bench]'), skipped")
    report = {}
    for name, seconds in runs.items():
        per_page = min(seconds) / args.pages * 1e6  # the best run: least disturbed by load
        report[name] = {"us_per_page": round(per_page, 1), "links": links[name],
                        "us_per_link": round(per_page / links[name], 2),
                        "runs_us_per_page": [round(s / args.pages * 1e6, 1) for s in seconds]}
        print(f"{name:12s} {per_page:8.1f} µs/page  {per_page / links[name]:6.2f} µs/link  "
              f"({links[name]} links; runs: "
              f"{', '.join(f'{s / args.pages * 1e6:.0f}' for s in seconds)})")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
