"""--recrawl: a finished JOBDIR crawled again with conditional requests; only what changed is
fetched in full and written again (checked from the server's own log)."""
import json
import signal
from collections import Counter
from email.utils import formatdate

import pytest

from crawler.frontier.recrawl import verdict
from crawler.sitegen import Site
from pageserver import PageHandler, serving
from procs import QUIET, read_jsonl, wait_for, write_seeds
from test_faults import Cluster

NO_ROBOTS = ["-s", "ROBOTSTXT_OBEY=false"]


def _changed_page(title: str, links: str = "") -> tuple[int, str, bytes]:
    body = f"<html><head><title>{title}</title></head><body>{links}</body></html>"
    return 200, "text/html; charset=utf-8", body.encode()


def test_a_recrawl_fetches_in_full_and_writes_only_what_changed(serve, project, run_master,
                                                                tmp_path):
    site = serve(Site(pages=40, links=3))
    seeds, jobdir = write_seeds(project, site.url), tmp_path / "job"
    first = run_master([seeds, "--workers", 1, "-o", project / "first.jsonl", "--jobdir",
                        jobdir, *QUIET, *NO_ROBOTS], timeout=60)
    assert first.returncode == 0, first.describe()
    known = {item["url"] for item in read_jsonl(project / "first.jsonl")}
    assert len(known) == len(site.site.paths())

    changed = ["/book/3.html", "/book/17.html", "/catalogue/page-2.html"]
    for n, path in enumerate(changed):
        links = '<a href="/new.html">new</a>' if n == 0 else ""
        site.extra[path] = lambda n=n, links=links: _changed_page(f"Changed {n}", links)
    site.extra["/new.html"] = lambda: _changed_page("New page")
    site.extra["/book/25.html"] = lambda: (404, "text/html", b"gone")
    site.extra["/book/26.html"] = lambda: (410, "text/html", b"gone")
    site.statuses.clear()

    second = run_master([seeds, "--workers", 1, "-o", project / "second.jsonl", "--jobdir",
                         jobdir, "--recrawl", *QUIET, *NO_ROBOTS], timeout=60)
    assert second.returncode == 0, second.describe()
    answered = dict(site.statuses)
    assert len(site.statuses) == len(answered), "a URL was fetched twice in one round"
    full = {path for path, status in answered.items() if status == 200}
    assert full == set(changed) | {"/new.html"}, second.describe()
    assert {p for p, s in answered.items() if s == 304} == \
        site.site.paths() - set(changed) - {"/book/25.html", "/book/26.html"}
    assert answered["/book/25.html"] == 404 and answered["/book/26.html"] == 410
    base = site.url.rstrip("/")
    written = Counter(item["url"] for item in read_jsonl(project / "second.jsonl"))
    assert written == Counter(base + p for p in full)
    unchanged = len(known) - len(changed) - 2
    assert f"recrawl: {unchanged} unchanged, 3 changed, 1 new, 2 gone" in second.stdout
    stats = json.loads((jobdir / "stats.json").read_text())
    assert stats["recrawl"] == {"unchanged": unchanged, "changed": 3, "new": 1, "gone": 2}

    again = run_master([seeds, "--workers", 1, "--jobdir", jobdir, "-o",
                        project / "second.jsonl", *QUIET, *NO_ROBOTS], timeout=30)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.describe()


class _LastModifiedOnly(PageHandler):
    """Two pages that give Last-Modified and no ETag, and answer If-Modified-Since."""

    stamp = formatdate(1_700_000_000, usegmt=True)
    asked: list = []

    def do_GET(self) -> None:
        since = self.headers.get("If-Modified-Since")
        self.asked.append((self.path, since, self.headers.get("If-None-Match")))
        if since == self.stamp:
            self.send(304, b"")
            return
        links = '<a href="/b">b</a>' if self.path == "/" else ""
        self.send(200, f"<title>{self.path}</title>{links}".encode(),
                  {"Last-Modified": self.stamp})


def test_a_recrawl_sends_if_modified_since_from_last_modified(project, run_master, tmp_path):
    _LastModifiedOnly.asked = []
    with serving(_LastModifiedOnly) as base:
        seeds, jobdir = write_seeds(project, base + "/"), tmp_path / "job"
        first = run_master([seeds, "--workers", 1, "--jobdir", jobdir, *QUIET, *NO_ROBOTS])
        assert first.returncode == 0, first.describe()
        assert sorted(_LastModifiedOnly.asked) == [("/", None, None), ("/b", None, None)]
        _LastModifiedOnly.asked = []
        second = run_master([seeds, "--workers", 1, "--jobdir", jobdir, "--recrawl", *QUIET,
                             *NO_ROBOTS], name="recrawl")
    assert second.returncode == 0, second.describe()
    stamp = _LastModifiedOnly.stamp
    assert sorted(_LastModifiedOnly.asked) == [("/", stamp, None), ("/b", stamp, None)]
    assert "recrawl: 2 unchanged, 0 changed, 0 new, 0 gone" in second.stdout, second.describe()


class _EtagRepeated(PageHandler):
    """Two pages whose ETag every answer repeats, a 304 too (as nginx does)."""

    asked: list = []

    def do_GET(self) -> None:
        etag = f'"v1{self.path}"'
        self.asked.append((self.path, self.headers.get("If-None-Match")))
        if self.headers.get("If-None-Match") == etag:
            self.send(304, b"", {"ETag": etag})
            return
        links = '<a href="/b">b</a>' if self.path == "/" else ""
        self.send(200, f"<title>{self.path}</title>{links}".encode(), {"ETag": etag})


def test_validators_a_304_repeats_serve_the_next_recrawl_too(project, run_master, tmp_path):
    _EtagRepeated.asked = []
    with serving(_EtagRepeated) as base:
        args = [write_seeds(project, base + "/"), "--workers", 1, "--jobdir", tmp_path / "job",
                *QUIET, *NO_ROBOTS]
        first = run_master(args)
        assert first.returncode == 0, first.describe()
        runs = [run_master([*args, "--recrawl"], name=f"recrawl{n}") for n in (1, 2)]
    for run in runs:
        assert run.returncode == 0, run.describe()
        assert "recrawl: 2 unchanged, 0 changed, 0 new, 0 gone" in run.stdout, run.describe()
    assert Counter(_EtagRepeated.asked) == {("/", None): 1, ("/", '"v1/"'): 2,
                                            ("/b", None): 1, ("/b", '"v1/b"'): 2}


def test_recrawl_needs_a_jobdir(project, run_master, site):
    proc = run_master([write_seeds(project, site.url), "--recrawl", *QUIET])
    assert proc.returncode == 2
    assert "--recrawl needs the --jobdir" in proc.stderr


def test_a_304_reaches_the_callback_when_the_spider_asks_for_it(project, run_master,
                                                                 tmp_path):
    _LastModifiedOnly.asked = []
    with serving(_LastModifiedOnly) as base:
        seeds, jobdir = write_seeds(project, base + "/"), tmp_path / "job"
        assert run_master([seeds, "--workers", 1, "--jobdir", jobdir, *QUIET,
                           *NO_ROBOTS]).returncode == 0
        second = run_master([seeds, "--workers", 1, "--jobdir", jobdir, "--recrawl", "-O",
                             project / "again.jsonl", "-s", "HTTPERROR_ALLOWED_CODES=304",
                             *QUIET, *NO_ROBOTS], name="recrawl")
    assert second.returncode == 0, second.describe()
    items = read_jsonl(project / "again.jsonl")
    assert sorted((i["url"], i["status"]) for i in items) == [(base + "/", 304),
                                                              (base + "/b", 304)]


def test_a_recrawl_killed_midway_resumes_with_its_counts(serve, project, procs, tmp_path):
    site = serve(Site(pages=60, links=3))
    cluster = Cluster(procs, project, tmp_path, site, *NO_ROBOTS)
    first = cluster.master()
    worker = cluster.worker()
    assert first.wait(60) == 0, first.describe()
    assert worker.wait(15) == 0, worker.describe()
    site.delay = 0.1  # slow now: the recrawl is still running when it is killed
    site.extra["/book/7.html"] = lambda: _changed_page("Changed")
    site.statuses.clear()
    cluster.args += ["--recrawl"]
    recrawl = cluster.master()
    worker = cluster.worker()
    wait_for(lambda: len(site.statuses) >= 20, 30, "20 pages revisited",
             describe=recrawl.describe)
    recrawl.send(signal.SIGKILL)
    assert recrawl.wait(5) == -signal.SIGKILL
    assert len(site.statuses) < len(site.site.paths()), "over before the kill"
    resumed = cluster.master()  # the same command, --recrawl included: a resume
    assert resumed.wait(60) == 0, resumed.describe()
    assert worker.wait(15) == 0, worker.describe()
    assert "resuming" in resumed.stdout, resumed.describe()
    total = len(site.site.paths())
    assert f"recrawl: {total - 1} unchanged, 1 changed, 0 new, 0 gone" in resumed.stdout, \
        resumed.describe()
    fetched = {path for path, status in site.statuses if status == 200}
    assert fetched == {"/book/7.html"}


SITEMAP_SPIDER = '''
from crawler import SitemapSpider


class ListedSpider(SitemapSpider):
    name = "listed"

    def parse(self, response):
        yield {"url": response.url, "title": response.css("title::text").get()}
'''


class _Listed(PageHandler):
    """/sitemap.xml lists /p/0.html ... /p/9.html with a <lastmod> each; ETags everywhere."""

    lastmod: dict = {}
    titles: dict = {}
    asked: list = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        if self.path == "/sitemap.xml":
            base = f"http://127.0.0.1:{self.server.server_port}"
            entries = "".join(f"<url><loc>{base}{p}</loc><lastmod>{m}</lastmod></url>"
                              for p, m in sorted(self.lastmod.items()))
            body = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                    f'sitemap/0.9">{entries}</urlset>').encode()
            kind = "application/xml"
        else:
            body, kind = f"<title>{self.titles[self.path]}</title>".encode(), "text/html"
        etag = f'"{hash(body) & 0xffffffff:x}"'
        if self.headers.get("If-None-Match") == etag:
            self.send(304, b"", {"ETag": etag})
        else:
            self.send(200, body, {"ETag": etag, "Content-Type": kind})


def test_a_sitemap_lastmod_no_newer_skips_the_request(project, run_master, tmp_path):
    (project / "spiders" / "listed.py").write_text(SITEMAP_SPIDER)
    pages = [f"/p/{i}.html" for i in range(10)]
    _Listed.lastmod = dict.fromkeys(pages, "2024-01-01")
    _Listed.titles = dict.fromkeys(pages, "old")
    _Listed.asked = []
    one_at_a_time = ["-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", *NO_ROBOTS, *QUIET]
    with serving(_Listed) as base:
        seeds, jobdir = write_seeds(project, base + "/sitemap.xml"), tmp_path / "job"
        first = run_master([seeds, "--spider", "listed", "--workers", 1, "--jobdir", jobdir,
                            "-o", project / "a.jsonl", *one_at_a_time])
        assert first.returncode == 0, first.describe()
        assert sorted(_Listed.asked) == sorted(pages + ["/sitemap.xml"])
        _Listed.lastmod["/p/3.html"] = "2024-06-01T12:00:00+00:00"  # listed as changed
        _Listed.titles["/p/3.html"] = _Listed.titles["/p/5.html"] = "new"  # 5 is not
        _Listed.asked = []
        second = run_master([seeds, "--spider", "listed", "--workers", 1, "--jobdir", jobdir,
                             "--recrawl", "-o", project / "b.jsonl", *one_at_a_time],
                            name="recrawl")
    assert second.returncode == 0, second.describe()
    assert _Listed.asked == ["/sitemap.xml", "/p/3.html"]  # the sitemap first, then 3 only
    assert [i["url"] for i in read_jsonl(project / "b.jsonl")] == [base + "/p/3.html"]
    assert "recrawl: 9 unchanged, 2 changed, 0 new, 0 gone" in second.stdout, second.describe()


@pytest.mark.parametrize("task,result,found", [
    ({"revisit": {}}, {"outcome": "done", "status": 304}, "unchanged"),
    ({"revisit": {}}, {"outcome": "done", "status": 200}, "changed"),
    ({"revisit": {}}, {"outcome": "done", "status": 301}, None),  # its target is counted
    ({}, {"outcome": "done", "status": 200}, "new"),
    ({"revisit": {}}, {"outcome": "failed", "reason": "http_410"}, "gone"),
    ({"revisit": {}}, {"outcome": "failed", "reason": "timeout"}, None),
])
def test_what_a_result_says_about_its_page(task, result, found):
    assert verdict(task, result, 1) == found
    assert verdict(task, result, 0) == (None if found == "new" else found)
