"""Crawls that keep running (--keep-running): fed with python -m crawler.add while they run,
ended by python -m crawler.stop. Real master, worker and command processes; a loopback site."""
from __future__ import annotations

import signal
import threading
from collections import Counter

from pageserver import PageHandler, serving
from procs import QUIET, count_lines, read_jsonl, wait_for, write_key, write_seeds
from test_e2e import listening_address, summary_line

LINKS = {"/a": ["/a1"], "/b": ["/b1"]}  # every other page links nowhere


def site_handler(log: Counter, lock: threading.Lock) -> type[PageHandler]:
    class Site(PageHandler):
        def do_GET(self):
            with lock:
                log[self.path] += 1
            if self.path == "/robots.txt":
                return self.send(200, b"User-agent: *\nDisallow: /private\n",
                                 {"Content-Type": "text/plain"})
            links = "".join(f'<a href="{p}">{p}</a>' for p in LINKS.get(self.path, ()))
            self.send(200, f"<title>{self.path}</title>{links}".encode())
    return Site


def add(procs, project, address, key, *args, name="add"):
    proc = procs.module("crawler.add", [address, "--authkey-file", key, *args], project, name)
    proc.wait(20)
    return proc


def test_added_urls_are_crawled_once_politely_until_stopped(procs, project, tmp_path):
    log, lock = Counter(), threading.Lock()
    with serving(site_handler(log, lock)) as base:
        key, out = write_key(tmp_path / "key"), project / "out.jsonl"
        master = procs.master([write_seeds(project, base + "/a"), "--keep-running",
                               "--workers", 1, "--authkey-file", key, "-o", out, *QUIET],
                              project)
        address = listening_address(master)
        assert f"python -m crawler.add {address} --authkey-file {key}" in \
            master.wait_output("keeping running", 10), master.describe()
        # /a and /a1 written: nothing is queued or leased any more, and the crawl goes on
        wait_for(lambda: count_lines(out) == 2, 20, "the seed's 2 items",
                 describe=master.describe)

        added = add(procs, project, address, key, base + "/b", base + "/c", base + "/a",
                    base + "/private")
        assert added.returncode == 0, added.describe()
        assert "3 URLs added, 1 already known, 0 refused" in added.stdout, added.describe()
        listed = write_seeds(tmp_path, "# more", base + "/d", name="more.txt")
        from_file = add(procs, project, address, key, "-f", listed, name="add-file")
        assert from_file.returncode == 0, from_file.describe()
        assert "1 URLs added" in from_file.stdout, from_file.describe()
        bad = add(procs, project, address, key, "not a url", base + "/e", name="add-bad")
        assert bad.returncode == 2, bad.describe()
        assert "not an http(s) URL" in bad.stderr, bad.describe()

        wait_for(lambda: count_lines(out) == 6, 20, "6 items", describe=master.describe)
        stop = procs.module("crawler.stop", [address, "--authkey-file", key], project, "stop")
        assert stop.wait(20) == 0, stop.describe()
        assert master.wait(20) == 0, master.describe()
        wait_for(lambda: not master.group_alive(), 10, "the local worker to exit",
                 describe=master.describe)

    urls = sorted(item["url"][len(base):] for item in read_jsonl(out))
    assert urls == ["/a", "/a1", "/b", "/b1", "/c", "/d"]
    # each once; /private refused by robots.txt, /e (sent with a bad URL) never added
    assert log == {"/robots.txt": 1, "/a": 1, "/a1": 1, "/b": 1, "/b1": 1, "/c": 1, "/d": 1}
    summary = summary_line(master)
    assert summary.group(1, 2, 3) == ("stopped", "6", "1"), master.describe()


def test_add_and_stop_refuse_a_wrong_key_and_report_no_master(procs, project, tmp_path):
    log, lock = Counter(), threading.Lock()
    with serving(site_handler(log, lock)) as base:
        key, out = write_key(tmp_path / "key"), project / "out.jsonl"
        master = procs.master([write_seeds(project, base + "/a"), "--keep-running",
                               "--workers", 0, "--authkey-file", key, "-o", out, *QUIET],
                              project)
        address = listening_address(master)
        wrong = add(procs, project, address, write_key(tmp_path / "other"), base + "/b")
        assert wrong.returncode == 2, wrong.describe()
        assert "refused the key" in wrong.stderr, wrong.describe()
        stop = procs.module("crawler.stop", [address, "--authkey-file", key], project, "stop")
        assert stop.wait(20) == 0, stop.describe()
        assert master.wait(20) == 0, master.describe()
        gone = add(procs, project, address, key, base + "/b", name="add-gone")
        assert gone.returncode == 1, gone.describe()
        assert "no master answers" in gone.stderr, gone.describe()
    assert "/b" not in log


def test_a_crawl_may_start_empty_and_be_fed_from_outside(procs, project, tmp_path):
    log, lock = Counter(), threading.Lock()
    with serving(site_handler(log, lock)) as base:
        key, out = write_key(tmp_path / "key"), project / "out.jsonl"
        # No seeds: no seed hosts either, so the address guard would refuse loopback.
        master = procs.master(["--keep-running", "--workers", 1, "--authkey-file", key,
                               "-o", out, "-s", "ADDRESS_GUARD=false", *QUIET], project)
        address = listening_address(master)
        added = add(procs, project, address, key, base + "/a")
        assert added.returncode == 0, added.describe()
        wait_for(lambda: count_lines(out) == 2, 20, "2 items", describe=master.describe)
        stop = procs.module("crawler.stop", [address, "--authkey-file", key], project, "stop")
        assert stop.wait(20) == 0, stop.describe()
        assert master.wait(20) == 0, master.describe()
    assert sorted(item["url"][len(base):] for item in read_jsonl(out)) == ["/a", "/a1"]


def test_without_keep_running_a_crawl_needs_start_urls(project, run_master):
    master = run_master(["--workers", 0, "--authkey-file", project / "k"])
    assert master.returncode == 2, master.describe()
    assert "no start URLs" in master.stderr, master.describe()


def test_sigterm_ends_a_crawl_that_keeps_running(procs, project, tmp_path):
    log, lock = Counter(), threading.Lock()
    with serving(site_handler(log, lock)) as base:
        out = project / "out.jsonl"
        master = procs.master([write_seeds(project, base + "/a"), "--keep-running",
                               "--workers", 1, "-o", out, *QUIET], project)
        wait_for(lambda: count_lines(out) == 2, 20, "2 items", describe=master.describe)
        master.send(signal.SIGTERM)
        assert master.wait(20) == 130, master.describe()
        wait_for(lambda: not master.group_alive(), 10, "the local worker to exit",
                 describe=master.describe)
    assert summary_line(master).group(1, 2) == ("interrupted", "2"), master.describe()
