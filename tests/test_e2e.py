"""End to end: real master and worker processes crawling generated sites on loopback.

Each test starts `python -m crawler.master` / `crawler.worker` / `crawler.demo` as
subprocesses (see procs.py), in a temporary project folder, and checks exit statuses,
the items written, what the site server was asked for, and the summary.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import stat
import time
from collections import Counter

import pytest

from crawler.sitegen import Site
from procs import (QUIET, count_lines, free_port, hold_first_page, read_jsonl, site_urls,
                   wait_for, write_key, write_seeds)

ROBOTS = "/robots.txt"  # the one path outside the site a polite crawler may ask for


# -- helpers -------------------------------------------------------------------------------
def requested(server) -> Counter:
    """How often each path was requested from a SiteServer."""
    return Counter(path.split("?")[0] for path, _, _ in list(server.log))


def assert_each_page_fetched_once(server, paths=None) -> None:
    """The server saw every expected path exactly once, and nothing else (bar robots.txt)."""
    expected = set(server.site.paths() if paths is None else paths)
    wait_for(lambda: set(requested(server)) >= expected, 5,
             "the server log to list every page", describe=lambda: str(sorted(requested(server))))
    counts = requested(server)
    twice = {p: n for p, n in counts.items() if n > 1}
    assert not twice, f"pages fetched more than once: {twice}"
    outside = set(counts) - expected - {ROBOTS}
    assert not outside, f"paths requested that are not pages of the site: {sorted(outside)}"


def assert_one_item_per_page(items: list[dict], server, paths=None) -> None:
    urls = [item["url"] for item in items]
    dupes = [u for u, n in Counter(urls).items() if n > 1]
    assert not dupes, f"duplicate items: {dupes}"
    expected = site_urls(server, paths)
    assert set(urls) == expected, (f"missing: {sorted(expected - set(urls))}; "
                                   f"unexpected: {sorted(set(urls) - expected)}")


def title_of(server, path: str) -> str:
    return re.search(r"<title>(.*?)</title>", server.site.render(path)[2].decode()).group(1)


def price_of(server, path: str) -> str:
    return re.search(r'<p class="price">([^<]*)</p>', server.site.render(path)[2].decode()).group(1)


def summary_line(proc) -> re.Match:
    match = re.search(r"^crawl (\S+): (\d+) pages done, (\d+) failed, (\d+) items -> (.*)$",
                      proc.stdout, re.M)
    assert match, f"no summary line\n{proc.describe()}"
    return match


def listening_address(proc, timeout: float = 15.0) -> str:
    """HOST:PORT from the master's 'master listening on' line."""
    text = proc.wait_output("master listening on", timeout)
    return re.search(r"master listening on (\S+?);", text).group(1)


def assert_no_process_left(*procs) -> None:
    for proc in procs:
        wait_for(lambda: not proc.group_alive(), 10, f"{proc.name} and its children to exit",
                 describe=proc.describe)


# -- 1. a plain crawl ---------------------------------------------------------------------------
def test_generic_crawl_with_two_workers(site, project, run_master):
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET])

    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    assert_one_item_per_page(items, site)
    base = site.url.rstrip("/")
    for item in items:
        assert {"url", "status", "title", "depth"} <= set(item), item
        path = item["url"][len(base):]
        assert item["status"] == 200, item
        assert item["title"] == title_of(site, path), item
        assert isinstance(item["depth"], int) and item["depth"] >= 0, item
        assert (item["depth"] == 0) == (path == "/"), item
    assert_each_page_fetched_once(site)
    total = len(site.site.paths())
    summary = summary_line(master)
    assert summary.group(1, 2, 3, 4) == ("finished", str(total), "0", str(total)), \
        master.describe()


# -- 2. scope ---------------------------------------------------------------------------------
def test_links_to_other_hosts_are_not_followed(serve, project, run_master):
    site = serve(Site(pages=20))
    other = serve(Site(pages=5), host="127.0.0.2")
    status, ctype, body = site.site.render("/")
    links = (f'<a href="{other.url}">elsewhere</a> <a href="{other.url}book/1.html">b</a> '
             f'<link rel="next" href="{other.url}catalogue/page-2.html">')
    front = body.replace(b"</h1>", b"</h1>" + links.encode())
    site.extra["/"] = lambda: (status, ctype, front)

    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET])

    assert master.returncode == 0, master.describe()
    assert other.log == [], f"the host that is not a seed was crawled: {other.log}"
    items = read_jsonl(out)
    assert_one_item_per_page(items, site)
    assert not [i for i in items if "127.0.0.2" in i["url"]]
    assert_each_page_fetched_once(site)
    assert re.search(r"links dropped:.*offsite [1-9]", master.stdout), master.describe()


# -- 3. a cluster started by hand ---------------------------------------------------------------
@pytest.mark.parametrize("order,key", [
    ("master-first", "given"),
    ("master-first", "created-by-master"),
    ("workers-first", "given"),
    ("workers-first", "created-by-master"),
])
def test_manual_cluster(order, key, site, project, procs, tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    key_file = tmp_path / "k"
    if key == "given":
        write_key(key_file)
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    gate = hold_first_page(site)
    master_args = [seeds, "--bind", address, "--authkey-file", key_file, "--workers", 0,
                   "-o", out, *QUIET]

    def start_workers():
        return [procs.worker(address, key_file, ["-c", 8], cwd=project, name="worker")
                for _ in range(2)]

    workers = start_workers() if order == "workers-first" else []
    for worker in workers:  # both are up and retrying before the master exists
        worker.wait_output("waiting for master", 15, stream="stderr")
    key_before_master = key_file.exists()
    master = procs.master(master_args, project)
    assert listening_address(master) == address
    workers = workers or start_workers()
    assert key_before_master == (key == "given")
    for worker in workers:  # both met the master before the seed page lets the crawl go on
        worker.wait_output("spider generic", 20, stream="stderr")
    gate.set()

    for proc in [master, *workers]:
        assert proc.wait(20) == 0, proc.describe()
    assert_no_process_left(master, *workers)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_bytes().strip()) >= 32
    assert_one_item_per_page(read_jsonl(out), site)
    assert_each_page_fetched_once(site)
    total = len(site.site.paths())
    assert summary_line(master).group(1, 2) == ("finished", str(total)), master.describe()


# -- 4. security ------------------------------------------------------------------------------
def test_worker_with_wrong_key_is_refused_and_the_crawl_goes_on(site, project, procs, tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    right, wrong = write_key(tmp_path / "right.key"), write_key(tmp_path / "wrong.key")
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = procs.master([seeds, "--bind", address, "--authkey-file", right, "--workers", 0,
                           "-o", out, *QUIET], project)
    listening_address(master)

    intruder = procs.worker(address, wrong, ["-c", 2], cwd=project, name="wrong-key")
    assert intruder.wait(15) != 0, intruder.describe()
    assert "authkey" in intruder.stderr.lower(), intruder.describe()
    assert site.log == [], "a worker with the wrong key fetched pages"

    gate = hold_first_page(site)
    workers = [procs.worker(address, right, ["-c", 8], cwd=project) for _ in range(2)]
    for worker in workers:
        worker.wait_output("spider generic", 20, stream="stderr")
    gate.set()
    for proc in [master, *workers]:
        assert proc.wait(20) == 0, proc.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert_each_page_fetched_once(site)


def test_worker_refuses_key_file_readable_by_others(procs, project, tmp_path):
    key_file = write_key(tmp_path / "k", mode=0o644)
    worker = procs.worker(f"127.0.0.1:{free_port()}", key_file, cwd=project, max_wait=10)
    assert worker.wait(15) == 2, worker.describe()
    assert re.search(r"permission|chmod|readable by", worker.stderr, re.I), worker.describe()


def test_master_refuses_key_file_readable_by_others(site, project, run_master, tmp_path):
    key_file = write_key(tmp_path / "k", mode=0o644)
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--authkey-file", key_file, "--workers", 1, "-o", out, *QUIET])
    assert master.returncode == 2, master.describe()
    assert re.search(r"permission|chmod|readable by", master.stderr, re.I), master.describe()
    assert site.log == []
    assert not out.exists(), "output file created although the master refused to start"


def test_master_without_key_file_uses_a_private_temporary_key(site, serve, project, procs,
                                                              run_master):
    tmpdir = procs.tmpdir  # the TMPDIR of every process the test starts
    before = set(os.listdir(project))
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"

    # A master crawling a slow site one page at a time stays up: its temporary key can be
    # looked at.
    slow = write_seeds(project, serve(Site(pages=60), delay=0.5).url, name="slow.txt")
    idle = procs.master([slow, "--workers", 1, "-o", project / "idle.jsonl",
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", *QUIET], project,
                        name="idle-master")
    listening_address(idle)
    key_files = [p for p in tmpdir.rglob("*") if p.is_file()]
    assert key_files, "no temporary key under TMPDIR while the master runs"
    for key_file in key_files:  # private file, in a private folder
        assert stat.S_IMODE(key_file.stat().st_mode) & 0o077 == 0, key_file
        assert stat.S_IMODE(key_file.parent.stat().st_mode) & 0o077 == 0, key_file.parent
    idle.send(signal.SIGTERM)
    assert idle.wait(20) == 130, idle.describe()
    assert list(tmpdir.rglob("*")) == [], "the temporary key was left behind"

    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET])
    assert master.returncode == 0, master.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert list(tmpdir.rglob("*")) == [], "the temporary key was left behind"
    new = set(os.listdir(project)) - before
    assert new == {"seeds.txt", "slow.txt", "idle.jsonl", "out.jsonl"}, \
        f"new files in the cwd: {new}"


# -- 5. bad input -------------------------------------------------------------------------------
def _bad_seeds(project, site):
    seeds = write_seeds(project, "# start here", "", site.url, "ftp://127.0.0.1/not-http",
                        site.url + "book/1.html")
    return [seeds], r"(:4\b|line 4\b)"


BAD_INPUT = {
    "malformed-seed-line": _bad_seeds,
    "setting-of-wrong-type": lambda project, site: (
        [write_seeds(project, site.url), "-s", "DOWNLOAD_DELAY=abc"], "DOWNLOAD_DELAY"),
    "unknown-setting": lambda project, site: (
        [write_seeds(project, site.url), "-s", "NO_SUCH_SETTING=1"], "NO_SUCH_SETTING"),
    "unknown-spider": lambda project, site: (
        [write_seeds(project, site.url), "--spider", "nosuchspider"], "nosuchspider"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_stops_before_anything_starts(case, site, project, run_master):
    args, message = BAD_INPUT[case](project, site)
    out = project / "out.jsonl"
    master = run_master([*args, "--workers", 2, "-o", out, *QUIET], timeout=15)
    assert master.returncode == 2, master.describe()
    assert re.search(message, master.stderr), master.describe()
    assert "master listening" not in master.stdout, master.describe()
    assert not out.exists(), "output file created for a crawl that never started"
    assert site.log == [], "pages were fetched"


def test_existing_csv_is_not_overwritten_without_overwrite(site, project, run_master):
    out = project / "out.csv"
    out.write_text("keep,me\n1,2\n")
    seeds = write_seeds(project, site.url)
    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET], timeout=15)
    assert master.returncode == 2, master.describe()
    assert "overwrite" in master.stderr, master.describe()
    assert out.read_text() == "keep,me\n1,2\n"
    assert site.log == []


# -- 6. output formats -------------------------------------------------------------------------
def test_output_formats(site, project, run_master):
    seeds = write_seeds(project, site.url)
    expected = site_urls(site)

    out_csv = project / "out.csv"
    out_csv.write_text("old\n")
    master = run_master([seeds, "--workers", 2, "-o", out_csv, "--overwrite", *QUIET],
                        name="csv")
    assert master.returncode == 0, master.describe()
    with open(out_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["url", "status", "title", "depth"], rows[:2]
    assert len(rows) == 1 + len(expected)
    assert len([r[0] for r in rows[1:]]) == len({r[0] for r in rows[1:]}), "duplicate rows"
    assert {r[0] for r in rows[1:]} == expected
    assert {r[1] for r in rows[1:]} == {"200"}

    out_json = project / "out.json"
    master = run_master([seeds, "--workers", 2, "-o", out_json, *QUIET], name="json")
    assert master.returncode == 0, master.describe()
    items = json.loads(out_json.read_text(encoding="utf-8"))
    assert isinstance(items, list)
    assert_one_item_per_page(items, site)

    out_jsonl = project / "out.jsonl"
    for run in (1, 2):
        master = run_master([seeds, "--workers", 2, "-o", out_jsonl, *QUIET], name="jsonl")
        assert master.returncode == 0, master.describe()
        items = read_jsonl(out_jsonl)
        assert len(items) == run * len(expected), f"run {run}: {len(items)} lines"
    first, second = items[:len(expected)], items[len(expected):]
    assert_one_item_per_page(first, site)
    assert_one_item_per_page(second, site)


# -- 7. the spider API -------------------------------------------------------------------------
def test_books_spider(site, project, run_master):
    seeds = write_seeds(project, site.url)
    out = project / "books.jsonl"
    master = run_master([seeds, "--spider", "books", "--workers", 2, "-o", out, *QUIET])
    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    books = {p for p in site.site.paths() if p.startswith("/book/")}
    assert_one_item_per_page(items, site, books)
    base = site.url.rstrip("/")
    for item in items:
        path = item["url"][len(base):]
        assert item["title"] == title_of(site, path), item
        assert item["price"] == price_of(site, path), item
        assert re.fullmatch(r"\d+\.\d\d", item["price"]), item
    catalogues = {p for p in site.site.paths() if not p.startswith("/book/")}
    assert_each_page_fetched_once(site, books | catalogues)


SPIDER_MODULE = '''
from crawler import Request, Spider


class MetaSpider(Spider):
    name = "metatest"
    custom_settings = {"DEPTH_LIMIT": 1, "METATEST_TAG": "from-custom-settings"}

    def parse(self, response):
        for link in response.soup.select("a.book"):
            yield Request(response.urljoin(link["href"]), callback=self.parse_book,
                          meta={"from": response.url, "label": link.get_text()})
        yield from response.follow_all(css="a.next")

    def parse_book(self, response):
        yield {
            "url": response.url,
            "from": response.meta["from"],
            "label": response.meta["label"],
            "title": response.soup.find("h1").get_text(),
            "price": response.soup.select_one("p.price").get_text(),
            "depth": response.depth,
            "depth_limit": self.settings["DEPTH_LIMIT"],
            "tag": self.settings.get("METATEST_TAG"),
        }
'''


def test_project_spider_runs_on_a_worker_that_gets_it_by_name(site, procs, tmp_path):
    folder = tmp_path / "myproject"
    (folder / "spiders").mkdir(parents=True)
    (folder / "spiders" / "__init__.py").write_text("")
    (folder / "spiders" / "meta.py").write_text(SPIDER_MODULE)
    assert not (folder / "settings.py").exists()
    seeds = write_seeds(folder, site.url)
    out = folder / "items.jsonl"
    address = f"127.0.0.1:{free_port()}"
    key_file = write_key(tmp_path / "k")
    master = procs.master([seeds, "--spider", "metatest", "--bind", address, "--authkey-file",
                           key_file, "--workers", 0, "-o", out, *QUIET], folder)
    listening_address(master)
    # The worker is told nothing but the address: the spider name comes from the master.
    worker = procs.worker(address, key_file, ["-c", 4], cwd=folder)
    assert master.wait(20) == 0, master.describe()
    assert worker.wait(20) == 0, worker.describe()

    items = read_jsonl(out)
    # DEPTH_LIMIT=1 from custom_settings: the books of catalogue page 1 only.
    books = {f"/book/{i}.html" for i in range(20)}
    assert_one_item_per_page(items, site, books)
    base = site.url.rstrip("/")
    for item in items:
        path = item["url"][len(base):]
        number = path[len("/book/"):-len(".html")]
        assert item["from"] == site.url, item
        assert item["label"] == f"Book {number}", item
        assert item["title"] == title_of(site, path), item
        assert item["price"] == price_of(site, path), item
        assert item["depth"] == 1, item
        assert item["depth_limit"] == 1, item
        assert item["tag"] == "from-custom-settings", item
    assert_each_page_fetched_once(site, books | {"/", "/catalogue/page-2.html"})


# -- 8. closing early ----------------------------------------------------------------------------
def test_closespider_pagecount(serve, project, run_master, tmp_path):
    site = serve(Site(pages=60), delay=0.02)
    total = len(site.site.paths())
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    jobdir = tmp_path / "job"
    master = run_master([seeds, "--workers", 2, "-o", out, "--jobdir", jobdir,
                         "-s", "CLOSESPIDER_PAGECOUNT=10",
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *QUIET])
    assert master.returncode == 0, master.describe()
    stats = json.loads((jobdir / "stats.json").read_text())
    assert stats["closed_by"] == "closespider_pagecount", stats
    done = stats["pages_done"]
    assert 10 <= done < min(total, 30), stats
    summary = summary_line(master)
    assert summary.group(1, 2) == ("closespider_pagecount", str(done)), master.describe()
    items = read_jsonl(out)
    assert len(items) == stats["items"] == done
    assert len({i["url"] for i in items}) == done
    assert {i["url"] for i in items} <= site_urls(site)
    assert max(requested(site).values()) == 1


# -- 9. interrupting the master --------------------------------------------------------------------
@pytest.mark.parametrize("sig,group,limit", [
    (signal.SIGTERM, False, 12.0),
    (signal.SIGINT, False, 12.0),
    # Ctrl-C in a terminal reaches the whole process group, local workers too; the master
    # may wait its documented 10 s for work in flight that will never be reported.
    (signal.SIGINT, True, 14.0),
], ids=["SIGTERM", "SIGINT", "Ctrl-C-to-group"])
def test_interrupted_master_stops_cleanly(sig, group, limit, serve, project, procs, tmp_path):
    site = serve(Site(pages=300), delay=0.05)
    total = len(site.site.paths())
    seeds = write_seeds(project, site.url)
    out = project / "out.jsonl"
    jobdir = tmp_path / "job"
    master = procs.master([seeds, "--workers", 2, "-o", out, "--jobdir", jobdir,
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4", *QUIET], project)
    wait_for(lambda: count_lines(out) >= 10, 15, "10 items in the output",
             describe=master.describe)
    assert master.alive(), master.describe()
    sent = time.monotonic()
    master.send(sig, group=group)
    assert master.wait(limit + 5) == 130, master.describe()
    took = time.monotonic() - sent
    assert took < limit, f"took {took:.1f} s to stop"
    assert_no_process_left(master)

    summary = summary_line(master)
    stats = json.loads((jobdir / "stats.json").read_text())
    assert summary.group(1) == "interrupted", master.describe()
    items = read_jsonl(out)  # every line is valid JSON
    urls = [i["url"] for i in items]
    assert len(urls) == len(set(urls)), "duplicate items"
    assert set(urls) <= site_urls(site)
    assert 10 <= len(items) < total
    assert len(items) == stats["items"] == stats["pages_done"], stats
    assert max(requested(site).values()) == 1


# -- 10. the demo ------------------------------------------------------------------------------
def test_demo(procs, project):
    out = project / "d.jsonl"
    demo = procs.module("crawler.demo", ["--pages", 40, "-o", out, *QUIET], project, "demo")
    assert demo.wait(30) == 0, demo.describe()
    assert_no_process_left(demo)
    url = re.search(r"demo site: (http://\S+)", demo.stdout).group(1)
    paths = Site(pages=40).paths()
    expected = {url.rstrip("/") + p for p in paths}
    items = read_jsonl(out)
    urls = [i["url"] for i in items]
    assert len(urls) == len(set(urls)) == len(paths) == 42
    assert set(urls) == expected
    assert summary_line(demo).group(1, 2) == ("finished", str(len(paths))), demo.describe()
