"""Sitemaps: reading them (urlset, index, gzip, robots.txt Sitemap: lines, bounds), the
SitemapSpider's rules, start requests kept whole, and whole crawls with real master and
workers on a loopback site."""
from __future__ import annotations

import functools
import gzip
import json
import logging
import subprocess
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawler import GenericSpider, PageError, Request, Response, SitemapSpider, UsageError, config
from crawler.frontier import DONE, Frontier
from crawler.frontier.journal import Journal
from crawler.http.fetcher import FetchConfig, Fetcher
from crawler.spider.base import make_spider
from crawler.starts import StartRequests
from crawler.scheduler import Scheduler
from crawler.spider.handler import Handler, Rules
from crawler.spider.sitemap import LASTMOD, read_sitemap, uncompressed
from procs import QUIET, base_env, read_jsonl, write_seeds

MiB = 1 << 20
NS = ('xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
      'xmlns:xhtml="http://www.w3.org/1999/xhtml"')
XML = {"Content-Type": "application/xml"}
GZ = {"Content-Type": "application/x-gzip"}


# -- sitemaps as text ----------------------------------------------------------------------------
def entry(loc: str, lastmod: str | None = None, alternates=(), tag: str = "url") -> str:
    inner = f"<loc>{loc}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
    inner += "".join(f'<xhtml:link rel="alternate" hreflang="x{i}" href="{href}"/>'
                     for i, href in enumerate(alternates))
    return f"<{tag}>{inner}</{tag}>"


def urlset(*entries: str) -> bytes:
    return f'<?xml version="1.0"?><urlset {NS}>{"".join(entries)}</urlset>'.encode()


def index(*locs: str, lastmod: str | None = None) -> bytes:
    body = "".join(entry(loc, lastmod, tag="sitemap") for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{body}</sitemapindex>'.encode()


@functools.lru_cache(maxsize=None)
def bomb(mib: int) -> bytes:
    """mib MiB of zeros, gzipped (about 1 KB per MiB), made without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MiB)
    return b"".join(packer.compress(zeros) for _ in range(mib)) + packer.flush()


def parse(spider, url: str, body: bytes, headers=XML, status: int = 200) -> list[Request]:
    """What the spider's sitemap callback makes of a response."""
    response = Response(url, status, headers, body, spider.sitemap_request(url))
    return list(spider._parse_sitemap(response))


class Shop(SitemapSpider):
    name = "shop"

    def parse_book(self, response):
        yield {"url": response.url}

    sitemap_rules = [("/book/", parse_book), ("/book|/page/", "parse_page")]
    sitemap_follow = ["/sitemap-"]

    def parse_page(self, response):
        yield {"url": response.url}


# -- reading ----------------------------------------------------------------------------------
def test_urlset_entries_as_scrapy_gives_them():
    body = urlset(entry("http://e.com/a", "2024-05-01", ["http://e.com/de/a"]),
                  "<url><loc> http://e.com/b </loc><changefreq>daily</changefreq>"
                  "<priority>0.8</priority></url>", "<url><lastmod>2024</lastmod></url>")
    kind, entries = read_sitemap(body, 50_000)
    assert kind == "urlset"
    assert list(entries) == [
        {"loc": "http://e.com/a", "lastmod": "2024-05-01", "alternate": ["http://e.com/de/a"]},
        {"loc": "http://e.com/b", "changefreq": "daily", "priority": "0.8"},
    ]  # an entry without <loc> is skipped


def test_urlset_urls_go_to_the_first_rule_that_matches_with_lastmod_in_meta():
    body = urlset(entry("http://e.com/book/1", "2024-05-01"), entry("http://e.com/page/2"),
                  entry("http://e.com/other/3"))
    out = parse(Shop(), "http://e.com/sitemap-x.xml", body)
    assert [(r.url, r.callback, r.meta) for r in out] == [
        ("http://e.com/book/1", "parse_book", {LASTMOD: "2024-05-01"}),
        ("http://e.com/page/2", "parse_page", {}),
    ]  # /other/ matches no rule: not followed


def test_default_rules_send_everything_to_parse():
    out = parse(SitemapSpider(), "http://e.com/s.xml", urlset(entry("http://e.com/x")))
    assert [(r.url, r.callback) for r in out] == [("http://e.com/x", "parse")]


def test_index_sitemaps_are_followed_when_sitemap_follow_matches():
    body = index("http://e.com/sitemap-1.xml.gz", "http://e.com/news.xml", lastmod="2024-06-01")
    out = parse(Shop(), "http://e.com/index.xml", body)
    assert [(r.url, r.callback) for r in out] == [("http://e.com/sitemap-1.xml.gz",
                                                   "_parse_sitemap")]
    assert out[0].meta == {LASTMOD: "2024-06-01", "download_maxsize": 50 * MiB}


def test_alternate_links_followed_only_when_asked():
    body = urlset(entry("http://e.com/a", "2024-01-02", ["http://e.com/de/a", "http://e.com/fr/a"]))

    class Alternates(SitemapSpider):
        sitemap_alternate_links = True

    assert [r.url for r in parse(SitemapSpider(), "http://e.com/s.xml", body)] == ["http://e.com/a"]
    out = parse(Alternates(), "http://e.com/s.xml", body)
    assert [r.url for r in out] == ["http://e.com/a", "http://e.com/de/a", "http://e.com/fr/a"]
    assert {r.meta[LASTMOD] for r in out} == {"2024-01-02"}


def test_sitemap_filter_sees_the_entries():
    class Recent(SitemapSpider):
        def sitemap_filter(self, entries):
            return (e for e in entries if e.get("lastmod", "") >= "2024")

    body = urlset(entry("http://e.com/old", "2019-01-01"), entry("http://e.com/new", "2024-02-02"),
                  entry("http://e.com/undated"))
    assert [r.url for r in parse(Recent(), "http://e.com/s.xml", body)] == ["http://e.com/new"]


def test_robots_txt_sitemap_lines_become_sitemap_requests():
    text = (b"User-agent: *\nDisallow: /private/\nSitemap: /sitemap_index.xml\n"
            b"sitemap:https://cdn.e.com/s.xml.gz\n")
    out = parse(SitemapSpider(), "http://e.com/robots.txt", text, {"Content-Type": "text/plain"})
    assert [(r.url, r.callback) for r in out] == [
        ("http://e.com/sitemap_index.xml", "_parse_sitemap"),
        ("https://cdn.e.com/s.xml.gz", "_parse_sitemap")]
    assert all(r.meta["download_maxsize"] == 50 * MiB for r in out)


def test_gzip_file_is_read():
    body = gzip.compress(urlset(entry("http://e.com/a"), entry("http://e.com/b")))
    out = parse(SitemapSpider(), "http://e.com/s.xml.gz", body, GZ)
    assert [r.url for r in out] == ["http://e.com/a", "http://e.com/b"]


def test_gzip_bomb_fails_as_too_large():
    with pytest.raises(PageError) as info:
        parse(SitemapSpider(), "http://e.com/s.xml.gz", bomb(51), GZ)
    assert info.value.reason == "too_large"


_BOMB_CHILD = """
import json, zlib
from crawler import PageError
from crawler.spider.sitemap import uncompressed

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

packer, zeros = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1 << 20)
bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()
del zeros
start = peak()
try:
    uncompressed(bomb, 50 << 20)
except PageError as exc:
    print(json.dumps({"reason": exc.reason, "start": start, "peak": peak()}))
"""


def test_a_gzip_bomb_costs_about_the_cap_of_memory():
    if "VmHWM" not in open("/proc/self/status").read():
        pytest.skip("no VmHWM in /proc/self/status here")
    proc = subprocess.run([sys.executable, "-c", _BOMB_CHILD], capture_output=True, text=True,
                          timeout=60, env=base_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["reason"] == "too_large", out
    assert out["peak"] - out["start"] < 50 + 16, out  # 200 MiB of zeros, the cap 50 MiB


def test_uncompressed_size_cap_is_exact():
    body = urlset(entry("http://e.com/a"))
    assert uncompressed(gzip.compress(body), len(body)) == body
    with pytest.raises(PageError) as info:
        uncompressed(gzip.compress(body), len(body) - 1)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize("body", [
    b"", b"<html><body><p>not a sitemap", b"<urlset><url><loc>http://e.com/a</loc></url>",
    urlset(entry("http://e.com/a")) + b"<url>", b"\x1f\x8b not gzip at all",
    b'<?xml version="1.0"?><rss><channel/></rss>',
])
def test_malformed_or_foreign_xml_fails_as_sitemap_invalid(body):
    with pytest.raises(PageError) as info:
        parse(SitemapSpider(), "http://e.com/s.xml", body)
    assert info.value.reason == "sitemap_invalid"


def test_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("http://e.com/leaked")
    body = (f'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file://{secret}">]>'
            f'<urlset {NS}><url><loc>&x;</loc></url><url><loc>http://e.com/a</loc></url>'
            '</urlset>').encode()
    assert [r.url for r in parse(SitemapSpider(), "http://e.com/s.xml", body)] == ["http://e.com/a"]


def test_more_than_50000_urls_are_cut_at_50000_with_a_warning(caplog):
    body = urlset(*(f"<url><loc>http://e.com/{i}</loc></url>" for i in range(50_001)))
    with caplog.at_level(logging.WARNING, "crawler.spider.sitemap"):
        out = parse(SitemapSpider(), "http://e.com/big.xml", body)
    assert len(out) == 50_000 and out[-1].url == "http://e.com/49999"
    assert "http://e.com/big.xml lists more than 50000 URLs" in caplog.text


@pytest.mark.parametrize("rules", [[("(", "parse")], [("", "no_such_method")],
                                   [("", len)]])
def test_bad_sitemap_rules_are_a_usage_error(rules):
    spider = type("Bad", (SitemapSpider,), {"sitemap_rules": rules})
    with pytest.raises(UsageError):
        spider()


def _start_tasks(spider_cls, settings, seed_urls):
    spider = make_spider(spider_cls, settings)
    return StartRequests(spider, settings["FINGERPRINT_IGNORE_PARAMS"], seed_urls).first


# -- seeds and start requests ------------------------------------------------------------------
def test_a_sitemap_spider_takes_the_seeds_for_sitemaps():
    out = list(Shop().seed_requests(["http://e.com/robots.txt"]))
    assert [(r.url, r.callback, r.meta) for r in out] == [
        ("http://e.com/robots.txt", "_parse_sitemap", {"download_maxsize": 50 * MiB})]


@pytest.mark.parametrize("on", [False, True])
def test_the_generic_spider_asks_the_seed_hosts_robots_for_sitemaps_when_set(on):
    spider = GenericSpider(config.merge({"SITEMAP_FROM_ROBOTS": on}))
    out = list(spider.seed_requests(["http://e.com/", "http://e.com/a", "https://f.com:8443/"]))
    got = [(r.url, r.callback) for r in out]
    assert got[:3] == [("http://e.com/", None), ("http://e.com/a", None),
                       ("https://f.com:8443/", None)]
    assert got[3:] == ([("http://e.com/robots.txt", "_parse_sitemap"),
                        ("https://f.com:8443/robots.txt", "_parse_sitemap")] if on else [])
    assert all(r.meta["download_maxsize"] == 50 * MiB and 404 in r.meta["handle_httpstatus_list"]
               for r in out[3:])


def test_a_robots_txt_that_is_not_there_lists_no_sitemaps():
    out = parse(SitemapSpider(), "http://e.com/robots.txt", b"Sitemap: /s.xml\n", status=404)
    assert out == []


class Starts(SitemapSpider):
    name = "starts"
    sitemap_urls = ["http://e.com/sitemap.xml"]

    def start_requests(self):
        yield from super().start_requests()
        yield Request("http://e.com/p", callback="parse_item", meta={"k": 1}, priority=5,
                      dont_filter=True)

    def parse_item(self, response):
        yield {}


def test_start_requests_keep_callback_meta_priority_and_dont_filter_into_the_journal(tmp_path):
    tasks = _start_tasks(Starts, config.merge(), None)
    journal = Journal(str(tmp_path / "job"))
    scheduler = Scheduler(Frontier(robots_agent=None), {}, lambda items: None, 64,
                          journal=journal)
    assert scheduler.admit(tasks) == 2

    resumed = Frontier(robots_agent=None)
    resumed.restore(journal.urls())  # as a restarted master does
    leased = {t["url"]: t for _, t in resumed.lease("w", 10)[0]}
    assert leased["http://e.com/sitemap.xml"]["callback"] == "_parse_sitemap"
    assert leased["http://e.com/sitemap.xml"]["meta"] == {"download_maxsize": 50 * MiB}
    page = leased["http://e.com/p"]
    assert (page["callback"], page["meta"], page["priority"], page["dont_filter"]) == \
        ("parse_item", {"k": 1}, 5, True)


def test_seed_requests_are_used_for_a_seeds_file():
    tasks = _start_tasks(Starts, config.merge(), ["http://e.com/robots.txt"])
    assert [(t["url"], t["callback"]) for t in tasks] == [("http://e.com/robots.txt",
                                                           "_parse_sitemap")]


def _fails(self):
    raise ValueError("a bug in the spider")


@pytest.mark.parametrize("start_requests", [
    lambda self: [Request("ftp://e.com/x")], lambda self: ["http://e.com/"],
    lambda self: [Request("http://e.com/", callback="nope")], lambda self: [Request(1)], _fails,
])
def test_bad_start_requests_are_a_usage_error(start_requests):
    spider = type("Odd", (SitemapSpider,), {"name": "odd", "start_requests": start_requests})
    with pytest.raises(UsageError, match=r"odd\.start_requests\(\)"):
        _start_tasks(spider, config.merge(), None)


# -- the frontier: a page request for /robots.txt next to the frontier's own robots task --------
def test_a_robots_txt_page_is_admitted_after_the_hosts_robots_task_was_leased():
    frontier = Frontier(robots_agent="crawler")
    frontier.admit([Request("http://example.com/").to_task(0)])
    (lease, robots), = frontier.lease("w", 10)[0]
    assert robots.get("robots"), robots
    frontier.complete(lease, DONE,
                      robots=frontier.parse_robots(200, "Sitemap: http://example.com/s.xml"))

    page = Request("http://example.com/robots.txt", callback="_parse_sitemap").to_task(1)
    assert frontier.admit([page]) == 1
    assert frontier.seen.unseen([page["fp"]]) == []  # known now, as a page
    leased = {t["url"]: t for _, t in frontier.lease("w", 10)[0]}
    assert set(leased) == {"http://example.com/", "http://example.com/robots.txt"}
    assert leased["http://example.com/robots.txt"]["callback"] == "_parse_sitemap"
    assert not leased["http://example.com/robots.txt"].get("robots")


def test_a_robots_txt_seed_is_fetched_as_a_page_after_the_robots_task():
    frontier = Frontier(robots_agent="crawler")
    page = Request("http://example.com/robots.txt", callback="_parse_sitemap").to_task(0)
    assert frontier.admit([page]) == 1
    (lease, robots), = frontier.lease("w", 10)[0]
    assert robots.get("robots"), robots
    frontier.complete(lease, DONE, robots=frontier.parse_robots(200, ""))
    (lease, task), = frontier.lease("w", 10)[0]
    assert task["callback"] == "_parse_sitemap" and not task.get("robots")
    frontier.complete(lease, DONE)
    assert frontier.finished() and frontier.stats[DONE] == 1


# -- a loopback web site -----------------------------------------------------------------------
class Web(ThreadingHTTPServer):
    """Serves {path: (status, headers, body)} on loopback and counts the paths asked for."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.asked: Counter = Counter()
        self.lock = threading.Lock()
        super().__init__((host, 0), _Serve)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.server_address[:2]

    def page(self, path: str) -> None:
        self.routes[path] = (200, {"Content-Type": "text/html"},
                             f"<html><title>{path}</title><body>{path}</body></html>".encode())


class _Serve(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        with self.server.lock:  # counted before the answer: a finished crawl has been counted
            self.server.asked[self.path] += 1
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"no"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def web():
    server = Web()
    yield server
    server.shutdown()
    server.server_close()


def handle(request: Request) -> dict:
    """A SitemapSpider's result for one request, really fetched, with the default settings."""
    s = config.merge()
    handler = Handler(SitemapSpider(), Fetcher(FetchConfig.from_settings(s, ["127.0.0.1"])),
                      Rules.from_settings(s, []))
    return handler.handle(request.to_task(0))


def sitemap(url: str) -> Request:
    return SitemapSpider().sitemap_request(url)


def test_download_maxsize_in_meta_lifts_the_cap_for_sitemaps(web):
    body = urlset(*(entry(f"{web.url}/{i:07d}/" + "x" * 100) for i in range(90_000)))
    assert 10 * MiB < len(body) < 50 * MiB
    web.routes["/big.xml"] = (200, XML, body)
    plain = handle(Request(web.url + "/big.xml", callback="_parse_sitemap"))
    assert (plain["outcome"], plain["reason"]) == ("failed", "too_large")  # DOWNLOAD_MAXSIZE
    result = handle(sitemap(web.url + "/big.xml"))
    assert result["outcome"] == "done" and len(result["requests"]) == 50_000


def test_gzip_content_encoding_is_decoded_by_the_fetcher(web):
    web.routes["/s.xml"] = (200, {**XML, "Content-Encoding": "gzip"},
                            gzip.compress(urlset(entry(web.url + "/a", "2024-03-04"))))
    result = handle(sitemap(web.url + "/s.xml"))
    assert result["outcome"] == "done"
    assert [(t["url"], t["meta"]) for t in result["requests"]] == [
        (web.url + "/a", {LASTMOD: "2024-03-04"})]


def test_gzip_content_encoding_bomb_fails_as_too_large(web):
    web.routes["/bomb.xml"] = (200, {**XML, "Content-Encoding": "gzip"}, bomb(51))
    result = handle(sitemap(web.url + "/bomb.xml"))
    assert (result["outcome"], result["reason"]) == ("failed", "too_large")


def test_a_malformed_sitemap_fails_its_page_with_the_reason(web):
    web.routes["/s.xml"] = (200, XML, urlset(entry(web.url + "/a"))[:-5])
    result = handle(sitemap(web.url + "/s.xml"))
    assert (result["outcome"], result["reason"], result["status"]) == \
        ("failed", "sitemap_invalid", 200)
    assert not result.get("requests")


# -- whole crawls --------------------------------------------------------------------------------
SHOP_SPIDER = '''
from crawler import SitemapSpider


class ShopSpider(SitemapSpider):
    name = "shop"
    sitemap_rules = [("/book/", "parse_book"), ("/page/", "parse_page")]
    sitemap_follow = ["/sitemap-"]

    def parse_book(self, response):
        yield {"url": response.url, "kind": "book", "lastmod": response.meta.get("lastmod")}

    def parse_page(self, response):
        yield {"url": response.url, "kind": "page", "lastmod": response.meta.get("lastmod")}
'''


def shop(web) -> tuple[set[str], set[str]]:
    """robots.txt -> an index -> a .xml.gz urlset of books, a gzip-encoded urlset of pages,
    a gzip bomb and a sitemap not followed; robots.txt also lists a broken sitemap."""
    u = web.url
    books = {f"/book/{i}.html" for i in range(12)}
    pages = {f"/page/{i}.html" for i in range(6)}
    for path in books | pages | {"/private/book/1.html", "/misc/1.html"}:
        web.page(path)
    web.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, (
        f"User-agent: *\nDisallow: /private/\nSitemap: /sitemap-index.xml\n"
        f"Sitemap: {u}/sitemap-broken.xml\n").encode())
    web.routes["/sitemap-index.xml"] = (200, XML, index(
        u + "/sitemap-books.xml.gz", u + "/sitemap-pages.xml", u + "/sitemap-bomb.xml.gz",
        u + "/news.xml"))
    web.routes["/sitemap-books.xml.gz"] = (200, GZ, gzip.compress(urlset(
        *(entry(u + p, "2024-01-01") for p in sorted(books)), entry(u + "/private/book/1.html"))))
    web.routes["/sitemap-pages.xml"] = (200, {**XML, "Content-Encoding": "gzip"}, gzip.compress(
        urlset(*(entry(u + p) for p in sorted(pages)), entry(u + "/book/3.html"),
               entry(u + "/misc/1.html"))))
    web.routes["/sitemap-bomb.xml.gz"] = (200, GZ, bomb(51))
    web.routes["/sitemap-broken.xml"] = (200, XML, b"<urlset><url><loc>" + u.encode() + b"/x")
    web.routes["/news.xml"] = (200, XML, urlset(entry(u + "/book/99.html")))
    return books, pages


def test_sitemap_spider_crawls_what_the_sitemaps_list(web, project, run_master):
    (project / "spiders" / "shop.py").write_text(SHOP_SPIDER)
    books, pages = shop(web)
    seeds = write_seeds(project, web.url + "/robots.txt")
    out, jobdir = project / "out.jsonl", project / "job"
    master = run_master([seeds, "--spider", "shop", "--workers", 2, "-o", out,
                         "--jobdir", jobdir, *QUIET])

    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    assert sorted(i["url"] for i in items) == sorted(web.url + p for p in books | pages)
    by_url = {i["url"]: i for i in items}
    assert all(by_url[web.url + p]["kind"] == "book" for p in books)
    assert all(by_url[web.url + p]["kind"] == "page" for p in pages)
    assert by_url[web.url + "/book/5.html"]["lastmod"] == "2024-01-01"  # 3 is listed twice
    assert by_url[web.url + "/page/0.html"]["lastmod"] is None

    sitemaps = {"/sitemap-index.xml", "/sitemap-books.xml.gz", "/sitemap-pages.xml",
                "/sitemap-bomb.xml.gz", "/sitemap-broken.xml"}
    # robots.txt twice: the frontier's own, and the spider's (a page, for its Sitemap: lines)
    assert web.asked == Counter({"/robots.txt": 2, **dict.fromkeys(books | pages | sitemaps, 1)})
    stats = json.loads((jobdir / "stats.json").read_text())
    assert stats["failed_by_reason"] == {"sitemap_invalid": 1, "too_large": 1, "robots": 1}
    assert stats["pages_done"] == len(books) + len(pages) + 4  # robots.txt, index, 2 urlsets
    failures = (jobdir / "failures.tsv").read_text().splitlines()
    assert f"sitemap_invalid\t{web.url}/sitemap-broken.xml" in failures


FRONT = b'<html><title>front</title><body><a href="/a.html">a</a></body></html>'


@pytest.fixture
def bare():
    """A second host, 127.0.0.2, with a front page and no robots.txt."""
    server = Web("127.0.0.2")
    server.routes["/"] = (200, {"Content-Type": "text/html"}, b"<title>bare</title>")
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("from_robots", [True, False])
def test_generic_spider_seeds_itself_from_robots_sitemaps(from_robots, web, bare, project,
                                                          run_master):
    u = web.url
    web.routes["/"] = (200, {"Content-Type": "text/html"}, FRONT)
    for path in ("/a.html", "/orphan-1.html", "/orphan-2.html"):
        web.page(path)
    web.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"},
                                 b"User-agent: *\nSitemap: /sitemap.xml\n")
    web.routes["/sitemap.xml"] = (200, XML, urlset(
        entry(u + "/orphan-1.html"), entry(u + "/orphan-2.html"), entry(u + "/a.html"),
        entry("http://127.0.0.3:9/elsewhere.html")))
    seeds = write_seeds(project, u + "/", bare.url + "/")
    out, jobdir = project / "out.jsonl", project / "job"
    master = run_master([seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, "-s",
                         f"SITEMAP_FROM_ROBOTS={from_robots}", *QUIET])

    assert master.returncode == 0, master.describe()
    crawled = {"/", "/a.html"} | ({"/orphan-1.html", "/orphan-2.html"} if from_robots else set())
    assert sorted(i["url"] for i in read_jsonl(out)) == sorted([bare.url + "/"] +
                                                               [u + p for p in crawled])
    expected = Counter(dict.fromkeys(crawled, 1), **{"/robots.txt": 1})
    if from_robots:
        expected.update({"/robots.txt": 1, "/sitemap.xml": 1})
    assert web.asked == expected
    assert bare.asked == Counter({"/": 1, "/robots.txt": 2 if from_robots else 1})
    # the host without robots.txt lists no sitemaps, and that is no failure
    assert json.loads((jobdir / "stats.json").read_text())["failed_by_reason"] == {}
