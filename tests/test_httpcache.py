"""HTTPCACHE_*: responses kept on the worker's disk and answered from there (the server's own
log shows it was not asked), expiry, and the RFC 2616 policy."""
import os
import time
from email.utils import formatdate

import pytest

from crawler import config
from crawler.errors import IgnoreRequest
from crawler.http.cache import CacheConfig, HttpCache
from crawler.http.fetcher import FetchConfig, Fetcher
from crawler.http.request import Request
from crawler.sitegen import Site
from pageserver import PageHandler, serving
from procs import QUIET, read_jsonl, write_seeds

CACHE = ["-s", "HTTPCACHE_ENABLED=true", "-s", "ROBOTSTXT_OBEY=false"]


def _entries(folder):
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]


def test_a_second_crawl_is_answered_from_the_cache(serve, project, run_master):
    site = serve(Site(pages=30, links=2))
    seeds = write_seeds(project, site.url)
    first = run_master([seeds, "--workers", 1, "-O", project / "a.jsonl", *CACHE, *QUIET])
    assert first.returncode == 0, first.describe()
    assert len(site.log) == len(site.site.paths())
    # The default HTTPCACHE_DIR is relative: each worker keeps it in its current folder.
    assert len(_entries(project / "httpcache" / "generic")) == len(site.site.paths())
    site.log.clear()
    second = run_master([seeds, "--workers", 1, "-O", project / "b.jsonl", *CACHE, *QUIET])
    assert second.returncode == 0, second.describe()
    assert site.log == []  # the server was not contacted at all
    pages = [{(i["url"], i["status"], i["title"]) for i in read_jsonl(project / name)}
             for name in ("a.jsonl", "b.jsonl")]  # depths follow the order pages came in
    assert pages[0] == pages[1] and len(pages[1]) == len(site.site.paths())


def test_expired_entries_are_fetched_again(serve, project, run_master, tmp_path):
    site = serve(Site(pages=10, links=1))
    seeds, cache = write_seeds(project, site.url), tmp_path / "shared-cache"
    settings = [*CACHE, "-s", f"HTTPCACHE_DIR={cache}", "-s", "HTTPCACHE_EXPIRATION_SECS=600"]
    first = run_master([seeds, "--workers", 1, "-O", project / "a.jsonl", *settings, *QUIET])
    assert first.returncode == 0, first.describe()
    entries = sorted(_entries(cache))
    aged = entries[:4]
    for path in aged:  # stored 20 minutes ago: older than HTTPCACHE_EXPIRATION_SECS
        os.utime(path, (time.time() - 1200, time.time() - 1200))
    site.log.clear()
    second = run_master([seeds, "--workers", 1, "-O", project / "b.jsonl", *settings, *QUIET])
    assert second.returncode == 0, second.describe()
    assert len(site.log) == len(aged)
    assert sorted(_entries(cache)) == entries  # refreshed in place
    assert all(os.path.getmtime(p) > time.time() - 600 for p in aged)


def test_a_bad_policy_is_refused_before_anything_starts(project, run_master, site):
    proc = run_master([write_seeds(project, site.url), "-s", "HTTPCACHE_POLICY=lru", *QUIET])
    assert proc.returncode == 2
    assert "HTTPCACHE_POLICY='lru': use dummy or rfc2616" in proc.stderr


# -- the cache on a real fetcher, with a real server -----------------------------------------
class _Pages(PageHandler):
    """/fresh has max-age, /etag an ETag only, /plain nothing, /missing is a 404."""

    asked: list = []

    def do_GET(self) -> None:
        self.asked.append((self.path, self.headers.get("If-None-Match")))
        if self.path == "/fresh":
            self.send(200, b"fresh", {"Cache-Control": "max-age=300"})
        elif self.path == "/etag" and self.headers.get("If-None-Match") == '"v1"':
            self.send(304, b"", {"ETag": '"v1"'})
        elif self.path == "/etag":
            self.send(200, b"tagged", {"ETag": '"v1"', "Date": formatdate(usegmt=True)})
        elif self.path == "/plain":
            self.send(200, b"plain")
        else:
            self.send(404, b"no")


def _cache(tmp_path, clock=time.time, **settings):
    s = config.merge({"HTTPCACHE_DIR": str(tmp_path), **settings})
    fetcher = Fetcher(FetchConfig.from_settings(s, ["127.0.0.1"]))
    return HttpCache(fetcher, CacheConfig.from_settings(s, "test"), clock)


@pytest.fixture
def pages():
    _Pages.asked = []
    with serving(_Pages) as base:
        yield base


def test_dummy_policy_keeps_everything_but_the_ignored_codes(tmp_path, pages):
    cache = _cache(tmp_path, HTTPCACHE_IGNORE_HTTP_CODES=[404])
    for _ in range(2):
        for path in ("/plain", "/missing"):
            cache.fetch(Request(pages + path))
    assert _Pages.asked == [("/plain", None), ("/missing", None), ("/missing", None)]
    assert cache.fetch(Request(pages + "/plain")).body == b"plain"


def test_ignore_missing_refuses_what_is_not_cached(tmp_path, pages):
    cache = _cache(tmp_path, HTTPCACHE_IGNORE_MISSING=True)
    with pytest.raises(IgnoreRequest):
        cache.fetch(Request(pages + "/plain"))
    assert _Pages.asked == []


def test_rfc2616_policy_obeys_max_age_and_revalidates_with_the_etag(tmp_path, pages):
    now = [time.time()]
    cache = _cache(tmp_path, lambda: now[0], HTTPCACHE_POLICY="RFC2616")
    for _ in range(2):
        for path in ("/fresh", "/etag", "/plain"):
            assert cache.fetch(Request(pages + path)).status == 200
    # /fresh is fresh for 300 s; /etag has no lifetime: revalidated (304, the copy is used);
    # /plain can be neither: never stored.
    assert _Pages.asked == [("/fresh", None), ("/etag", None), ("/plain", None),
                            ("/etag", '"v1"'), ("/plain", None)]
    assert cache.fetch(Request(pages + "/etag")).body == b"tagged"
    now[0] += 600  # /fresh is stale now, and has no validator: fetched again
    _Pages.asked = []
    cache.fetch(Request(pages + "/fresh"))
    assert _Pages.asked == [("/fresh", None)]
