"""Durability against the crawl's own plumbing: items a feed cannot take, a full disk, a journal
that cannot commit, close conditions that must leave a JOBDIR crawl resumable.

Real masters and workers (procs.py); a full disk is a real one for the master process: its
file size limit (RLIMIT_FSIZE, set with prlimit), so every write past it fails with EFBIG.
"""
from __future__ import annotations

import re
import shutil
import sqlite3
import sys

import pytest

from crawler.frontier import Frontier
from crawler.frontier.journal import Journal
from crawler.scheduler import Scheduler
from crawler.sitegen import Site
from crawler.urls import fingerprint, host_of
from procs import QUIET, read_jsonl, write_seeds
from test_e2e import assert_one_item_per_page, requested, summary_line
from test_faults import FAST, read_stats

PIPES = '''
class Spoil:
    """Book 1's item gets a key no feed can encode; book 2's pipeline call raises."""

    def process_item(self, item, spider):
        if item["url"].endswith("/book/1.html"):
            return dict(item) | {(1, 2): "tuple key"}
        if item["url"].endswith("/book/2.html"):
            raise ValueError("no price")
        return item
'''


def fsize_limited(procs, args, project, limit: int, name: str = "master"):
    """A master whose files may not grow past `limit` bytes: a full disk, for it alone."""
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    return procs.start(["prlimit", f"--fsize={limit}", sys.executable, "-m", "crawler.master",
                        *map(str, args)], project, name)


def assert_whole_lines(path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-200:]
    return read_jsonl(path)


# -- 4. errors per item, and a sink that cannot go on ---------------------------------------------
def test_items_a_feed_cannot_take_are_counted_and_listed(serve, project, run_master):
    (project / "pipes.py").write_text(PIPES)
    site = serve(Site(pages=20, links=2))
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--workers", 1, "-o", out,
                         "-s", 'ITEM_PIPELINES={"pipes.Spoil": 100}', *QUIET], timeout=30)
    assert master.returncode == 0, master.describe()
    assert "item_error: 2 items left out" in master.stdout, master.describe()
    failures = (project / "out.jsonl.failures.tsv").read_text().splitlines()
    assert sorted(failures) == [f"item_error\t{site.url}book/{n}.html" for n in (1, 2)]
    items = read_jsonl(out)
    paths = site.site.paths() - {"/book/1.html", "/book/2.html"}
    assert_one_item_per_page(items, site, paths)


def test_a_full_output_disk_stops_the_crawl_with_a_summary(serve, project, procs):
    site = serve(Site(pages=200, links=2))
    out = project / "out.jsonl"
    master = fsize_limited(procs, [write_seeds(project, site.url), "--workers", 1, "-o", out,
                                   *QUIET], project, limit=6000)
    assert master.wait(60) == 1, master.describe()
    assert "writing items failed" in master.stderr, master.describe()
    assert summary_line(master).group(1) == "aborted", master.describe()
    assert "cannot be resumed: it ran without --jobdir" in master.stdout
    items = assert_whole_lines(out)
    assert 0 < len(items) < len(site.site.paths())
    assert len({i["url"] for i in items}) == len(items)


def test_a_full_journal_disk_stops_the_crawl_and_it_resumes(serve, project, procs, run_master,
                                                             tmp_path):
    site = serve(Site(pages=150, links=2), delay=0.01)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    args = [write_seeds(project, site.url), "--workers", 2, "-o", out, "--jobdir", jobdir,
            *FAST]
    # The journal's WAL outgrows the limit long before the feed (an item is ~100 bytes).
    first = fsize_limited(procs, args, project, limit=120_000, name="full")
    assert first.wait(60) == 1, first.describe()
    # The scheduler's commit or the sink's record of what it wrote: whichever comes first.
    assert re.search(r"^error: (the journal cannot be written|writing items failed: the "
                     r"journal cannot record them)", first.stderr, re.M), first.describe()
    assert summary_line(first).group(1) == "aborted", first.describe()
    assert "to resume:" in first.stdout, first.describe()
    partial = assert_whole_lines(out)
    assert len(partial) < len(site.site.paths())

    second = run_master(args, timeout=60, name="resumed")
    assert second.returncode == 0, second.describe()
    assert "resuming" in second.stdout, second.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    stats = read_stats(jobdir)
    assert stats["closed_by"] == "finished" and stats["pages_failed"] == 0, stats


# -- 5. a journal commit that fails ---------------------------------------------------------------
class FlakyJournal(Journal):
    """A real journal whose next `failures` commits raise as a locked database does."""

    failures = 0

    def record(self, *args):
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().record(*args)


def _task(url: str) -> dict:
    return {"url": url, "fp": fingerprint(url), "host": host_of(url), "depth": 0}


def _scheduler(tmp_path, failures: int):
    journal = FlakyJournal(str(tmp_path / "job"))
    emitted: list = []
    scheduler = Scheduler(Frontier(), {}, emitted.extend, 10, journal=journal)
    scheduler.admit([_task("http://a.example/")])
    journal.failures = failures
    tasks = scheduler.lease("w", 10)["tasks"]
    result = {"lease": tasks[0]["lease"], "outcome": "done", "status": 200,
              "items": [{"n": 1}], "requests": [_task("http://a.example/next")]}
    return journal, scheduler, emitted, result


def test_a_failed_journal_commit_is_tried_again_and_loses_nothing(tmp_path):
    journal, scheduler, emitted, result = _scheduler(tmp_path, failures=1)
    assert scheduler.put("w", [result]) == [result["lease"]]  # does not raise to the worker
    assert emitted == [] and scheduler.fatal is None  # not written before it is committed
    scheduler.tick()  # the next commit carries the failed one's changes and items
    assert [item for _, item in emitted] == [{"n": 1}]
    journal.close()
    again = Journal(str(tmp_path / "job"))
    assert [item for _, item in again.unwritten_items()] == [{"n": 1}]
    assert sorted(state for _, state, *_ in again.urls()) == ["done", "queued"]


def test_a_journal_that_cannot_commit_aborts_the_crawl(tmp_path):
    journal, scheduler, emitted, result = _scheduler(tmp_path, failures=1000)
    scheduler.put("w", [result])
    for _ in range(5):
        scheduler.tick()
    assert scheduler.fatal and "database is locked" in scheduler.fatal
    assert scheduler.closing == "aborted" and scheduler.over()
    assert emitted == []
    assert scheduler.lease("w", 10)["tasks"] == []


# -- 15. a close condition leaves a JOBDIR crawl resumable ----------------------------------------
def test_closespider_pagecount_leaves_the_crawl_resumable(serve, project, run_master, tmp_path):
    site = serve(Site(pages=60, links=2), delay=0.02)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    args = [write_seeds(project, site.url), "--workers", 1, "-o", out, "--jobdir", jobdir,
            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *QUIET]
    first = run_master([*args, "-s", "CLOSESPIDER_PAGECOUNT=10"], timeout=30, name="first")
    assert first.returncode == 0, first.describe()
    assert summary_line(first).group(1) == "closespider_pagecount", first.describe()
    assert "to resume:" in first.stdout, first.describe()
    done = read_stats(jobdir)["pages_done"]
    second = run_master([*args, "-s", "CLOSESPIDER_PAGECOUNT=10"], timeout=30, name="second")
    assert second.returncode == 0 and "resuming" in second.stdout, second.describe()
    stats = read_stats(jobdir)
    assert stats["closed_by"] == "closespider_pagecount", stats
    assert stats["pages_done_this_run"] >= 10 and stats["pages_done"] > done, stats
    third = run_master(args, timeout=30, name="third")
    assert third.returncode == 0, third.describe()
    assert summary_line(third).group(1) == "finished", third.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert max(requested(site).values()) == 1


# -- 14. the address guard trusts the seeds' origins, not their hosts -----------------------------
def _linking_to(seed_server, other) -> None:
    page = (f'<html><title>front</title><a href="{other.url}">other service</a>'
            '<a href="/book/0.html">a book</a></html>').encode()
    seed_server.extra["/"] = lambda: (200, "text/html", page)


def _crawl_linking(serve, project, run_master, *extra):
    seed, other = serve(Site(pages=1, links=0)), serve(Site(pages=1, links=0))
    _linking_to(seed, other)
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, seed.url), "--workers", 1, "-o", out, *QUIET,
                         *(extra[0](other) if extra else ())], timeout=30)
    assert master.returncode == 0, master.describe()
    urls = {item["url"] for item in read_jsonl(out)}
    assert {seed.url, f"{seed.url}book/0.html"} <= urls
    return master, other, urls


def test_a_seed_trusts_its_origin_not_every_port_of_its_host(serve, project, run_master):
    master, other, urls = _crawl_linking(serve, project, run_master)
    assert other.url not in urls and not requested(other), requested(other)
    assert "failed(blocked_address): 1" in master.stdout, master.describe()
    assert "robots_unavailable" not in master.stdout, master.describe()
    failures = (project / "out.jsonl.failures.tsv").read_text()
    assert failures == f"blocked_address\t{other.url}\n"


def test_address_guard_trusted_widens_the_exemption(serve, project, run_master):
    def trust(other):
        return ["-s", f'ADDRESS_GUARD_TRUSTED=["{other.url.rstrip("/")}"]']
    master, other, urls = _crawl_linking(serve, project, run_master, trust)
    assert other.url in urls and requested(other)["/"] == 1, master.describe()


# -- 15. a page with a million links --------------------------------------------------------------
def test_links_beyond_the_per_page_limit_are_dropped_and_counted(serve, project, run_master):
    site = serve(Site(pages=1, links=0))
    page = ("<html><title>many</title>" + "".join(f'<a href="/many/{i}">{i}</a>'
                                                  for i in range(500)) + "</html>").encode()
    site.extra["/"] = lambda: (200, "text/html", page)
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--workers", 1, "-o", out, *QUIET,
                         "-s", "LINKS_PER_PAGE_LIMIT=120", "-s", "DEPTH_LIMIT=1"], timeout=60)
    assert master.returncode == 0, master.describe()
    assert "links_per_page 380" in master.stdout, master.describe()
    fetched = [p for p in requested(site) if p.startswith("/many/")]
    assert len(fetched) == 120, len(fetched)


# -- 10. the default User-Agent says how to reach a contact ---------------------------------------
def test_the_default_user_agent_points_to_the_readme_on_setting_a_contact():
    from crawler.config import defaults
    from procs import REPO
    agent = defaults()["USER_AGENT"]
    assert "pypi.org/project/requests" not in agent
    assert "see USER_AGENT in crawler's README" in agent
    assert "Set `USER_AGENT` with a contact" in (REPO / "README.md").read_text()


# -- 9. what pipelines see across a restart -------------------------------------------------------
RECORDING = '''
import json


class Record:
    """Logs every item it sees and the resume state at open and close, one JSON line each."""

    def _log(self, **entry):
        with open("pipeline.log", "a") as f:
            f.write(json.dumps(entry) + "\\n")

    def open_spider(self, spider):
        self._log(event="open", state=dict(spider.resume_state))

    def close_spider(self, spider):
        self._log(event="close", state=dict(spider.resume_state))

    def process_item(self, item, spider):
        self._log(event="item", url=item["url"])
        return item
'''


def test_pipelines_see_an_item_twice_only_when_replayed_and_are_told(serve, project, procs,
                                                                     run_master, tmp_path):
    from procs import count_lines, wait_for
    (project / "pipes.py").write_text(RECORDING)
    site = serve(Site(pages=120, links=2), delay=0.02)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    args = [write_seeds(project, site.url), "--workers", 2, "-o", out, "--jobdir", jobdir,
            "-s", 'ITEM_PIPELINES={"pipes.Record": 1}', *FAST]
    first = procs.master(args, project, "killed")
    wait_for(lambda: count_lines(out) >= 30, 30, "30 items", describe=first.describe)
    first.kill_group()  # SIGKILL: no close_spider, no last flush
    second = run_master(args, timeout=60, name="resumed")
    assert second.returncode == 0, second.describe()
    log = read_jsonl(project / "pipeline.log")
    opens = [e["state"] for e in log if e["event"] == "open"]
    closes = [e["state"] for e in log if e["event"] == "close"]
    assert [s["resumed"] for s in opens] == [False, True], opens
    assert opens[0]["replayed_items"] == 0
    assert closes == [dict(opens[1], closed_by="finished", resumable=False)], closes
    seen = [e["url"] for e in log if e["event"] == "item"]
    assert set(seen) == {item["url"] for item in read_jsonl(out)}
    assert len(seen) - len(set(seen)) <= opens[1]["replayed_items"]
    assert_one_item_per_page(read_jsonl(out), site)


# -- 15. seeds streamed: what the whole file says holds for seeds beyond the first batch ----------
def test_seeds_beyond_the_first_batch_are_trusted_and_in_scope(serve, project, run_master):
    blocked, other = serve(Site(pages=1, links=0)), serve(Site(pages=20, links=2),
                                                          host="127.0.0.2")
    # 3,000 seeds robots.txt refuses (settled without a fetch), then another host's front page
    blocked.extra["/robots.txt"] = lambda: (200, "text/plain", b"User-agent: *\nDisallow: /no/\n")
    seeds = write_seeds(project, *(f"{blocked.url}no/{i}" for i in range(3000)), other.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 1, "-o", out, *QUIET], timeout=90)
    assert master.returncode == 0, master.describe()
    assert "failed(robots): 3000" in master.stdout, master.describe()
    assert_one_item_per_page(read_jsonl(out), other)  # its links were in scope, it was trusted


# -- 9. a resume rebuilds the frontier as it was --------------------------------------------------
def _crawled_then_killed(jobdir) -> tuple[list[dict], dict[str, dict]]:
    """A frontier that admitted 3 hosts x 8 URLs (one of each host with a priority and
    fields), settled a few (done, failed, retried) and had the rest of its leases out when
    its master died; its changes committed to a journal. Returns the tasks and those
    settled, by outcome."""
    frontier = Frontier(per_host=2, retry_times=5, clock=lambda: 0.0, rng=lambda: 0.5)
    frontier.changes = []
    tasks = [_task(f"http://h{i % 3}.example/p{i}") for i in range(24)]
    for t in tasks[3:6]:
        t.update(priority=5, callback="parse_item", meta={"n": t["url"]})
    frontier.admit(tasks)
    leases = frontier.lease("w", 6)[0]  # two of each host: the three prioritized first
    (done, _), (retried, _), (failed, _) = ((lid, t) for lid, t in leases[:3])
    settled = {outcome: frontier.complete(lid, outcome, reason)
               for lid, outcome, reason in ((done, "done", None), (retried, "retry", "http_503"),
                                            (failed, "failed", "http_404"))}
    journal = Journal(str(jobdir))
    journal.record(frontier.changes, [])
    journal.close()
    return tasks, settled


def _lease_all(frontier: Frontier) -> list[dict]:
    out = []
    while not frontier.finished():
        batch = frontier.lease("w", 100)[0]
        assert batch, "queued URLs that are never leased"
        for lease_id, task in batch:
            out.append(task)
            frontier.complete(lease_id, "done")
    return out


# memory_queue 4: most of the queue in the spill; seen_dict 5: most URLs in the compact table
@pytest.mark.parametrize("memory_queue, seen_dict", [(0, 1000), (4, 1000), (0, 5)])
def test_a_resumed_frontier_queues_each_host_in_order_with_every_field(tmp_path, memory_queue,
                                                                        seen_dict):
    tasks, settled = _crawled_then_killed(tmp_path / "job")
    journal = Journal(str(tmp_path / "job"))
    resumed = Frontier(per_host=100, memory_queue=memory_queue, spill_dir=str(tmp_path),
                       seen_dict_max=seen_dict)
    resumed.restore(journal.urls())
    assert resumed.spilled == (22 - memory_queue if memory_queue else 0)
    assert (resumed.stats["admitted"], resumed.stats["done"], resumed.stats["failed"]) == \
        (24, 1, 1)
    assert resumed.failures == [(settled["failed"]["url"], "http_404")]
    leased = _lease_all(resumed)
    retry = dict(settled["retry"], attempt=1)
    # Each host: its prioritized URL, then the rest as admitted (the two leased when the
    # master died included), a retried URL after them (its retry was queued last).
    expected = [t for t in tasks if t["fp"] not in {s["fp"] for s in settled.values()}]
    expected = sorted(expected, key=lambda t: -t.get("priority", 0)) + [retry]
    for host in ("h0.example", "h1.example", "h2.example"):
        assert [t for t in leased if t["host"] == host] == \
            [t for t in expected if t["host"] == host]
    assert resumed.admit(tasks) == 0  # every URL known, none taken for another
    assert resumed.admit([_task("http://h0.example/new")]) == 1


def test_a_resumed_frontier_asks_only_for_the_robots_txt_it_does_not_know(tmp_path):
    tasks, settled = _crawled_then_killed(tmp_path / "job")
    journal = Journal(str(tmp_path / "job"))
    resumed = Frontier(robots_agent="bot", per_host=100)
    resumed.know_robots("http://h1.example", resumed.parse_robots(200, "User-agent: *\n"
                                                                       "Disallow: /p1\n"))
    resumed.restore(journal.urls())
    first = [t["url"] for _, t in resumed.lease("w", 100)[0]]
    assert sorted(url for url in first if url.endswith("/robots.txt")) == \
        ["http://h0.example/robots.txt", "http://h2.example/robots.txt"]
    known = {t["fp"] for t in settled.values()}
    h1 = [t["url"] for t in tasks if t["host"] == "h1.example" and t["fp"] not in known]
    assert sorted(url for url in first if "//h1." in url) == \
        sorted(url for url in h1 if not url.startswith("http://h1.example/p1"))
    assert resumed.stats["failed/robots"] == sum(url.startswith("http://h1.example/p1")
                                                 for url in h1) > 0
