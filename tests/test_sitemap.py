"""Sitemaps: reading them (urlset, index, gzip, robots.txt Sitemap: lines, bounds), the
SitemapSpider's rules, and whole crawls with real master and workers on loopback."""
from __future__ import annotations

from crawler import Request
from crawler.frontier import DONE, Frontier


# -- the frontier: a page request for /robots.txt next to the frontier's own robots task --------
def test_a_robots_txt_page_is_admitted_after_the_hosts_robots_task_was_leased():
    frontier = Frontier(robots_agent="crawler")
    frontier.admit([Request("http://example.com/").to_task(0)])
    (lease, robots), = frontier.lease("w", 10)[0]
    assert robots.get("robots"), robots
    frontier.complete(lease, DONE, robots=(200, "Sitemap: http://example.com/s.xml"))

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
    frontier.complete(lease, DONE, robots=(200, ""))
    (lease, task), = frontier.lease("w", 10)[0]
    assert task["callback"] == "_parse_sitemap" and not task.get("robots")
    frontier.complete(lease, DONE)
    assert frontier.finished() and frontier.stats[DONE] == 1
