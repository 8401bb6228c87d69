"""CloseSpider raised by a callback ends the crawl, as in Scrapy: what it yielded before is
kept, nothing more is handed out, and with a JOBDIR the same command goes on from there."""
from __future__ import annotations

import pytest

from crawler.sitegen import Site
from procs import QUIET, read_jsonl, write_seeds
from redis_server import start_or_skip
from test_e2e import requested, summary_line
from test_faults import read_stats

CLOSER = '''
from crawler import CloseSpider, Spider


class CloserSpider(Spider):
    name = "closer"

    def parse(self, response):
        yield {"url": response.url, "front": response.depth == 0}
        yield from response.follow_all(css="a")
        if response.depth == 0:  # the seed: done, so not fetched again when the crawl goes on
            raise CloseSpider("enough")
'''


@pytest.fixture
def closer(project):
    (project / "spiders" / "closer.py").write_text(CLOSER)
    return project


def test_a_callback_raising_closespider_ends_the_crawl_keeping_what_it_yielded(
        serve, closer, run_master, tmp_path):
    site = serve(Site(pages=40))
    out, jobdir = closer / "out.jsonl", tmp_path / "job"
    args = [write_seeds(closer, site.url), "--spider", "closer", "--workers", 2, "-o", out,
            "--jobdir", jobdir, "-s", "ROBOTSTXT_OBEY=false", *QUIET]
    first = run_master(args, timeout=30, name="first")
    assert first.returncode == 0, first.describe()
    assert summary_line(first).group(1, 2) == ("enough", "1"), first.describe()
    assert read_jsonl(out) == [{"url": site.url, "front": True}]
    assert set(requested(site)) == {"/"}  # the links it queued were not handed out
    assert read_stats(jobdir)["closed_by"] == "enough"
    # Not finished: the same command crawls what was queued.
    second = run_master(args, timeout=30, name="second")
    assert second.returncode == 0 and "resuming" in second.stdout, second.describe()
    assert summary_line(second).group(1) == "finished", second.describe()
    urls = [item["url"] for item in read_jsonl(out)]
    assert len(urls) == len(set(urls)) > 1 and requested(site)["/"] == 1


def test_closespider_on_redis_ends_the_crawl_and_a_new_run_is_not_closed_by_it(
        serve, closer, run_master, tmp_path):
    server = start_or_skip(tmp_path / "redis")
    try:
        site = serve(Site(pages=40))
        out = closer / "out.jsonl"
        args = [write_seeds(closer, site.url), "--spider", "closer", "--workers", 1,
                "--backend", server.url, "-o", out, "-s", "ROBOTSTXT_OBEY=false",
                "--status", "off", *QUIET]
        first = run_master(args, timeout=30, name="first")
        assert first.returncode == 0, first.describe()
        assert summary_line(first).group(1) == "enough", first.describe()
        assert {"url": site.url, "front": True} in read_jsonl(out)
        second = run_master(args, timeout=30, name="second")
        assert second.returncode == 0, second.describe()
        assert summary_line(second).group(1) == "finished", second.describe()
        urls = [item["url"] for item in read_jsonl(out)]
        assert len(urls) == len(set(urls)) == len(site.site.paths()), len(urls)
    finally:
        server.kill()


RAISER = '''
from crawler import Spider


class RaiserSpider(Spider):
    name = "raiser"

    def parse(self, response):
        if response.depth > 0:
            raise ValueError("a bug in the spider")
        yield from response.follow_all(css="a")
'''


def test_closespider_errorcount_closes_after_that_many_spider_errors(serve, project, run_master):
    (project / "spiders" / "raiser.py").write_text(RAISER)
    site = serve(Site(pages=60), delay=0.02)
    master = run_master([write_seeds(project, site.url), "--spider", "raiser", "--workers", 1,
                         "-s", "CLOSESPIDER_ERRORCOUNT=3", "-s", "ROBOTSTXT_OBEY=false",
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *QUIET], timeout=30)
    assert master.returncode == 0, master.describe()
    closed_by, done, failed = summary_line(master).group(1, 2, 3)
    assert closed_by == "closespider_errorcount", master.describe()
    assert 3 <= int(failed) < len(site.site.paths()) - 1 and done == "1", master.describe()
