"""Politeness and scope, end to end: real master and worker processes against SiteServers.

Politeness is judged from the server's side only: every SiteServer records (path, start, end)
of each request on the same monotonic clock the master uses, so overlaps and gaps between
request starts are measured exactly as the site would see them. Scope and robots.txt are
judged from what the server was asked for, the summary's counters and the failures file.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import urlsplit

import parsel
import pytest

from crawler import urls
from crawler.sitegen import Site
from crawler.spider.base import GenericSpider
from procs import QUIET, free_port, read_jsonl, site_urls, wait_for, write_key, write_seeds
from test_e2e import (ROBOTS, assert_each_page_fetched_once, listening_address, requested,
                      summary_line)

NO_JITTER = ["-s", "RANDOMIZE_DOWNLOAD_DELAY=false"]


# -- helpers -------------------------------------------------------------------------------
def full_log(server, count: int) -> list[tuple[str, float, float]]:
    """The server's log once it holds `count` requests (a response can reach the crawler a
    moment before the server thread records it), sorted by start."""
    wait_for(lambda: len(server.log) >= count, 5, f"{count} requests in the server log",
             describe=lambda: f"{len(server.log)} logged: {sorted(requested(server))}")
    return sorted(server.log, key=lambda r: r[1])


def max_in_flight(log) -> int:
    """Most requests the server was handling at one moment (an end at the very instant of a
    start does not count as overlapping)."""
    events = sorted([(start, 1) for _, start, _ in log] + [(end, -1) for _, _, end in log])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def overlapping_pairs(log) -> list[tuple]:
    ordered = sorted(log, key=lambda r: r[1])
    return [(a, b) for a, b in zip(ordered, ordered[1:]) if b[1] < a[2]]


def close_starts(log, delay: float) -> list[tuple[str, str, float]]:
    """Consecutive request starts less than `delay` apart: (earlier, later, gap)."""
    ordered = sorted(log, key=lambda r: r[1])
    return [(a[0], b[0], round(b[1] - a[1], 4)) for a, b in zip(ordered, ordered[1:])
            if b[1] - a[1] < delay]


def counters(proc) -> tuple[dict[str, int], dict[str, int]]:
    """({failure reason: count}, {drop reason: count}) from the master's summary."""
    failed = {m[1]: int(m[2]) for m in re.finditer(r"^\s+failed\(([\w:]+)\): (\d+)$",
                                                   proc.stdout, re.M)}
    dropped: dict[str, int] = {}
    line = re.search(r"^\s+links dropped: (.*)$", proc.stdout, re.M)
    if line:
        for part in line.group(1).split(", "):
            name, _, count = part.rpartition(" ")
            dropped[name] = int(count)
    return failed, dropped


def failures_file(out) -> list[tuple[str, str]]:
    """(reason, url) rows of the failures file written next to the output (none: [])."""
    path = out.with_name(out.name + ".failures.tsv")
    if not path.exists():
        return []
    return [tuple(line.split("\t", 1)) for line in path.read_text().splitlines()]


def page_links(server, path: str) -> list[str]:
    """Every link the generic spider extracts from a page, resolved (None for the ones
    that are not crawlable URLs), in document order."""
    status, ctype, body = server.extra[path]() if path in server.extra \
        else server.site.render(path)
    base = server.url.rstrip("/") + path
    hrefs = parsel.Selector(text=body.decode()).xpath(GenericSpider.link_xpath).getall()
    return [urls.normalize(urls.join(base, h)) for h in hrefs if h]


def same_site_paths(server, links) -> set[str]:
    netloc = urlsplit(server.url).netloc
    return {urlsplit(u).path for u in links if u and urlsplit(u).netloc == netloc}


def bfs_depths(server) -> dict[str, int]:
    """Each page's link distance from the front page."""
    depths, frontier = {"/": 0}, ["/"]
    while frontier:
        nxt = []
        for path in frontier:
            for child in sorted(same_site_paths(server, page_links(server, path))):
                if child not in depths:
                    depths[child] = depths[path] + 1
                    nxt.append(child)
        frontier = nxt
    return depths


def robots(body: str, status: int = 200):
    return lambda: (status, "text/plain", body.encode())


# -- 1. delay and concurrency across workers -------------------------------------------------
def test_delay_holds_across_three_workers(serve, project, run_master):
    site = serve(Site(pages=23))  # 25 pages
    pages = site.site.paths()
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 3, "-o", out, "-s",
                         "CONCURRENT_REQUESTS_PER_DOMAIN=1", "-s", "DOWNLOAD_DELAY=0.2",
                         *NO_JITTER, *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    log = full_log(site, len(pages) + 1)
    assert_each_page_fetched_once(site)
    assert requested(site)[ROBOTS] == 1
    assert max_in_flight(log) == 1, f"overlapping requests: {overlapping_pairs(log)}"
    too_close = close_starts(log, 0.2)
    assert not too_close, f"request starts less than DOWNLOAD_DELAY=0.2 s apart: {too_close}"


def test_per_domain_concurrency_caps_requests_in_flight(serve, project, run_master):
    site = serve(Site(pages=30), delay=0.1)
    pages = site.site.paths()
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 3, "-o", out,
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    log = full_log(site, len(pages) + 1)
    assert_each_page_fetched_once(site)
    peak = max_in_flight(log)
    assert peak <= 2, f"{peak} requests in flight at once to one host (limit 2)"
    # The measure can see overlap at all: three workers with 16 threads do use both slots.
    assert peak == 2, "never 2 requests in flight: the per-domain limit was not exercised"


def test_download_slots_hold_across_three_workers(serve, project, run_master):
    site = serve(Site(pages=23), delay=0.05)
    pages = site.site.paths()
    out = project / "out.jsonl"
    slots = '{"127.0.0.1": {"concurrency": 1, "delay": 0.2, "randomize_delay": false}}'
    master = run_master([write_seeds(project, site.url), "--workers", 3, "-o", out,
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8", "-s", f"DOWNLOAD_SLOTS={slots}",
                         *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    log = full_log(site, len(pages) + 1)
    assert_each_page_fetched_once(site)
    assert max_in_flight(log) == 1, f"overlapping requests: {overlapping_pairs(log)}"
    too_close = close_starts(log, 0.2)
    assert not too_close, f"request starts less than the slot's 0.2 s apart: {too_close}"


def test_slow_host_does_not_stall_the_crawl(serve, project, run_master):
    slow = serve(Site(pages=8), host="127.0.0.1", delay=0.5)    # 9 pages + robots.txt
    fast = serve(Site(pages=30), host="127.0.0.2")              # 31 pages + robots.txt
    seeds = write_seeds(project, slow.url, fast.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out,
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    slow_log = full_log(slow, len(slow.site.paths()) + 1)
    fast_log = full_log(fast, len(fast.site.paths()) + 1)
    assert_each_page_fetched_once(slow)
    assert_each_page_fetched_once(fast)
    assert max_in_flight(slow_log) == 1, overlapping_pairs(slow_log)
    assert max_in_flight(fast_log) == 1, overlapping_pairs(fast_log)
    slow_ends = sorted(end for _, _, end in slow_log)
    half = slow_ends[math.ceil(len(slow_ends) / 2) - 1]
    fast_last = max(end for _, _, end in fast_log)
    assert fast_last < half, (
        f"the fast host finished {fast_last - slow_ends[0]:.2f} s after the slow host's first "
        f"response, after half its pages ({half - slow_ends[0]:.2f} s): the slow host stalled "
        "the crawl")


# -- 2. robots.txt ------------------------------------------------------------------------------
def test_robots_disallow_is_obeyed_with_three_workers(serve, project, run_master):
    site = serve(Site(pages=25))
    site.extra[ROBOTS] = robots("User-agent: *\nDisallow: /book/1\n")
    pages = site.site.paths()
    banned = {p for p in pages if p.startswith("/book/1")}
    assert len(banned) == 11  # /book/1.html and /book/10.html .. /book/19.html
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 3, "-o", out, *QUIET])
    assert master.returncode == 0, master.describe()

    assert_each_page_fetched_once(site, pages - banned)
    counts = requested(site)
    assert counts[ROBOTS] == 1, f"robots.txt requested {counts[ROBOTS]} times"
    assert not banned & set(counts), f"disallowed pages fetched: {sorted(banned & set(counts))}"
    assert summary_line(master).group(2, 3) == (str(len(pages - banned)), str(len(banned)))
    failed, _ = counters(master)
    assert failed == {"robots": len(banned)}, master.describe()
    rows = failures_file(out)
    assert sorted(rows) == sorted(("robots", u) for u in site_urls(site, banned)), rows
    assert {i["url"] for i in read_jsonl(out)} == site_urls(site, pages - banned)


def test_robots_crawl_delay_spaces_requests(serve, project, run_master):
    site = serve(Site(pages=8))  # 9 pages
    site.extra[ROBOTS] = robots("User-agent: *\nCrawl-delay: 0.3\n")
    pages = site.site.paths()
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *NO_JITTER,
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8", *QUIET], timeout=30)
    assert master.returncode == 0, master.describe()
    log = full_log(site, len(pages) + 1)
    assert_each_page_fetched_once(site)
    assert log[0][0] == ROBOTS, f"first request was {log[0][0]}, not robots.txt"
    between_pages = close_starts(log[1:], 0.3)
    after_robots = close_starts(log[:2], 0.3)
    assert not between_pages and not after_robots, (
        f"Crawl-delay 0.3 not kept: pages started closer than 0.3 s: {between_pages}; "
        f"first page after robots.txt: {after_robots}")


@pytest.mark.parametrize("case", ["robots-404", "obey-false"])
def test_robots_allow_all(case, serve, project, run_master):
    site = serve(Site(pages=20))
    args = []
    if case == "robots-404":
        site.extra[ROBOTS] = robots("no such file", status=404)
    else:  # a robots.txt that would forbid everything, never asked for
        site.extra[ROBOTS] = robots("User-agent: *\nDisallow: /\n")
        args = ["-s", "ROBOTSTXT_OBEY=false"]
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *args, *QUIET])
    assert master.returncode == 0, master.describe()
    assert_each_page_fetched_once(site)
    assert requested(site)[ROBOTS] == (1 if case == "robots-404" else 0), requested(site)
    total = len(site.site.paths())
    assert summary_line(master).group(2, 3) == (str(total), "0"), master.describe()


def test_robots_server_error_makes_host_disallow_all(serve, project, run_master):
    site = serve(Site(pages=20))
    site.extra[ROBOTS] = robots("try later", status=500)
    seed_paths = ["/", "/book/1.html", "/book/2.html"]
    seeds = write_seeds(project, *(site.url.rstrip("/") + p for p in seed_paths))
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, "-s", "RETRY_TIMES=1", *QUIET])
    assert master.returncode == 0, master.describe()
    wait_for(lambda: len(site.log) >= 2, 5, "two robots.txt requests in the log",
             describe=lambda: str(requested(site)))
    assert requested(site) == Counter({ROBOTS: 2}), requested(site)
    assert summary_line(master).group(2, 3, 4) == ("0", "3", "0"), master.describe()
    failed, _ = counters(master)
    assert failed == {"robots_unavailable:http_500": 3}, master.describe()
    rows = failures_file(out)
    assert sorted(rows) == sorted(("robots_unavailable:http_500", u)
                                  for u in site_urls(site, seed_paths)), rows


# -- 3. scope -----------------------------------------------------------------------------------
SCOPED_SPIDER = '''
from crawler import Spider


class ScopedSpider(Spider):
    name = "scoped"
    allowed_domains = ["127.0.0.1"]

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all(xpath="//a/@href | //link[@rel='next']/@href")
'''


def _with_links(site, html: str) -> None:
    """Serve the front page with extra links right after its <h1>."""
    status, ctype, body = site.site.render("/")
    front = body.replace(b"</h1>", b"</h1>" + html.encode(), 1)
    site.extra["/"] = lambda: (status, ctype, front)


@pytest.mark.parametrize("spider", ["generic", "allowed_domains"])
def test_offsite_links_are_dropped_and_counted(spider, serve, project, run_master):
    site = serve(Site(pages=20))
    other = serve(Site(pages=5), host="127.0.0.3")
    offsite = [other.url, f"{other.url}book/1.html", f"{other.url}catalogue/page-2.html"]
    _with_links(site, "".join(f'<a href="{u}">x</a>' for u in offsite[:2])
                + f'<link rel="next" href="{offsite[2]}">')
    args = []
    if spider == "allowed_domains":
        (project / "spiders" / "scoped.py").write_text(SCOPED_SPIDER)
        args = ["--spider", "scoped"]
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *args, *QUIET])
    assert master.returncode == 0, master.describe()
    assert other.log == [], f"the host that is not a seed was requested: {other.log}"
    assert_each_page_fetched_once(site)
    assert {i["url"] for i in read_jsonl(out)} == site_urls(site)
    failed, dropped = counters(master)
    assert failed == {}, master.describe()
    assert dropped == {"offsite": len(offsite)}, master.describe()


def test_depth_limit_one(serve, project, run_master):
    site = serve(Site(pages=45, links=3))
    depth1 = same_site_paths(site, page_links(site, "/"))
    assert len(depth1) == 21 and "/catalogue/page-2.html" in depth1
    # Every link on a depth-1 page would be depth 2: all are dropped and counted, once for
    # each target of a page (the generic spider asks once per target).
    deeper_links = sum(len(set(page_links(site, p))) for p in depth1)
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, "-s", "DEPTH_LIMIT=1", *QUIET])
    assert master.returncode == 0, master.describe()
    assert_each_page_fetched_once(site, {"/"} | depth1)
    items = read_jsonl(out)
    assert {i["url"] for i in items} == site_urls(site, {"/"} | depth1)
    assert max(i["depth"] for i in items) == 1
    failed, dropped = counters(master)
    assert failed == {}, master.describe()
    assert dropped == {"depth": deeper_links}, master.describe()


INVALID_HREFS = [
    "javascript:void(0)",
    "JavaScript:alert(1)",
    "mailto:someone@example.org",
    "tel:+15555550100",
    "data:text/plain;base64,SGVsbG8=",
    "ftp://127.0.0.1/file.txt",
    "http://[::1/broken-ipv6",
    "http://exa mple.org/",
    "https://%zz/",
    "http://127.0.0.1:99999/port-out-of-range",
]


def test_uncrawlable_links_are_dropped_and_counted(serve, project, run_master):
    site = serve(Site(pages=20))
    _with_links(site, "".join(f'<a href="{h}">x</a>' for h in INVALID_HREFS))
    assert page_links(site, "/").count(None) == len(INVALID_HREFS)
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET])
    assert master.returncode == 0, master.describe()
    assert_each_page_fetched_once(site)
    total = len(site.site.paths())
    assert summary_line(master).group(2, 3) == (str(total), "0"), master.describe()
    failed, dropped = counters(master)
    assert failed == {}, master.describe()
    assert failures_file(out) == []
    assert dropped == {"invalid_url": len(INVALID_HREFS)}, master.describe()


# -- 4. priorities -------------------------------------------------------------------------------
@pytest.mark.parametrize("priority", [1, -1], ids=["breadth-first", "depth-first"])
def test_depth_priority_orders_requests(priority, serve, project, procs, tmp_path):
    site = serve(Site(pages=30, links=3))
    depths = bfs_depths(site)
    depth1 = {p for p, d in depths.items() if d == 1}
    depth2 = {p for p, d in depths.items() if d == 2}
    assert len(depth1) == 21 and depth2
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    address = f"127.0.0.1:{free_port()}"
    key_file = write_key(tmp_path / "k")
    master = procs.master([seeds, "--bind", address, "--authkey-file", key_file,
                           "--workers", 0, "-o", out, "-s", f"DEPTH_PRIORITY={priority}",
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", *QUIET], project)
    listening_address(master)
    worker = procs.worker(address, key_file, ["-c", 1], cwd=project)
    assert master.wait(30) == 0, master.describe()
    assert worker.wait(15) == 0, worker.describe()
    assert_each_page_fetched_once(site, set(depths))

    order = [path for path, _, _ in full_log(site, len(depths) + 1) if path != ROBOTS]
    last_depth1 = max(order.index(p) for p in depth1)
    first_depth2 = min(order.index(p) for p in depth2)
    # DEPTH_PRIORITY=1 finishes depth 1 before depth 2; -1 goes down first (the setting matters)
    breadth_first = last_depth1 < first_depth2
    assert breadth_first == (priority > 0), f"DEPTH_PRIORITY={priority}, order: {order}"
