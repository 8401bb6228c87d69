"""A spider's own counters (Scrapy's crawler.stats.inc_value), added up over the cluster:
real master and workers on the embedded master and on a real redis-server."""
from __future__ import annotations

import json
import threading

import pytest

from crawler import CrawlerError
from crawler.sitegen import Site
from crawler.spider.stats import SpiderStats
from procs import QUIET, read_jsonl, write_seeds
from redis_server import start_or_skip

COUNTING = '''
from crawler import Spider


class CountItems:
    @classmethod
    def from_crawler(cls, crawler):
        pipeline = cls()
        pipeline.stats = crawler.stats
        return pipeline

    def process_item(self, item, spider):
        self.stats.inc_value("items_seen")
        return item


class CountingSpider(Spider):
    name = "counting"
    custom_settings = {"ITEM_PIPELINES": {"spiders.counting.CountItems": 300}}

    def parse(self, response):
        self.crawler.stats.inc_value("pages")
        if "/book/" in response.url:
            self.crawler.stats.inc_value("books/price_chars", len(response.css(".price::text").get()))
        yield {"url": response.url}
        yield from response.follow_all(css="a")
'''


def expected(site) -> dict[str, int]:
    paths = site.site.paths()
    prices = sum(len(site.site.render(p)[2].split(b'class="price">')[1].split(b"<")[0])
                 for p in paths if p.startswith("/book/"))
    return {"books/price_chars": prices, "items_seen": len(paths), "pages": len(paths)}


@pytest.mark.parametrize("backend", ["embedded", "redis"])
def test_the_spiders_counts_are_added_up_over_workers_and_master(serve, project, run_master,
                                                                  tmp_path, backend):
    (project / "spiders" / "counting.py").write_text(COUNTING)
    site = serve(Site(pages=60))
    out, stats = project / "out.jsonl", tmp_path / "stats.json"
    extra = []
    server = start_or_skip(tmp_path / "redis") if backend == "redis" else None
    if server is not None:
        extra = ["--backend", server.url, "--status", "off"]
    try:
        master = run_master([write_seeds(project, site.url), "--spider", "counting",
                             "--workers", 2, "-o", out, "--stats", stats,
                             "-s", "ROBOTSTXT_OBEY=false", *extra, *QUIET], timeout=40)
    finally:
        if server is not None:
            server.kill()
    assert master.returncode == 0, master.describe()
    assert len(read_jsonl(out)) == len(site.site.paths())
    assert json.loads(stats.read_text())["spider_stats"] == expected(site)
    assert "spider stats: books/price_chars" in master.stdout, master.describe()


def test_counts_belong_to_the_page_their_thread_handles():
    stats, seen = SpiderStats(), {}

    def page(name: str, n: int) -> None:
        stats.begin_page()
        for _ in range(n):
            stats.inc_value(name)
        seen[name] = stats.end_page()

    threads = [threading.Thread(target=page, args=(f"t{i}", i + 1)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {f"t{i}": {f"t{i}": i + 1} for i in range(4)}
    assert stats.get_stats() == {f"t{i}": i + 1 for i in range(4)}
    assert stats.end_page() is None  # outside a page: counted only in the process


@pytest.mark.parametrize("call, says", [
    (lambda s: s.inc_value("a b"), "letters, digits"),
    (lambda s: s.inc_value("a", -1), "int >= 0"),
    (lambda s: s.inc_value("a", 1.5), "int >= 0"),
    (lambda s: s.inc_value("a", 1, start=5), "each starts at 0"),
    (lambda s: s.set_value("a", 1), "only inc_value"),
    (lambda s: s.max_value("a", 1), "only inc_value")])
def test_what_does_not_add_up_across_processes_is_refused(call, says):
    with pytest.raises(CrawlerError, match=says):
        call(SpiderStats())
