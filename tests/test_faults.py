"""Fault injection: real master and worker processes, real signals, a slow site on loopback.

Every test starts `python -m crawler.master` / `crawler.worker` as subprocesses (procs.py),
injects one fault with real signals (SIGKILL, SIGSTOP/SIGCONT, SIGTERM, SIGINT) or by damaging
the journal on disk, and then checks the crawl's invariants from the output and stats.json:
every page's item exactly once, and every admitted URL settled (done + failed = admitted).

Nothing sleeps in the hope that something has happened: every wait polls a condition with a
deadline. The only sleeps are the length of a fault itself (how long a process stays stopped).
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.link import keyfile, manager
from crawler.sitegen import Site
from procs import (QUIET, count_lines, free_port, read_jsonl, site_urls, wait_for,
                   write_key, write_seeds)
from test_e2e import (assert_no_process_left, assert_one_item_per_page, listening_address,
                      requested, summary_line)

LEASE_TIMEOUT = 2.0
CALL_TIMEOUT = 1.5
# Short leases and call deadlines, quick reconnects: faults are noticed within seconds.
FAST = ["-s", f"LEASE_TIMEOUT={LEASE_TIMEOUT}", "-s", f"CALL_TIMEOUT={CALL_TIMEOUT}",
        "-s", "RECONNECT_MAX_DELAY=1", *QUIET]


# -- helpers ---------------------------------------------------------------------------------
class Starts:
    """Records every request to a SiteServer as it starts (the server's own log only lists
    requests once answered), so a test can see requests in flight."""

    def __init__(self, server) -> None:
        self.server, self.paths = server, set(server.site.paths())
        self.log: list[str] = []
        for path in self.paths:
            server.extra[path] = self._maker(path)

    def _maker(self, path: str):
        def make():
            self.log.append(path)
            return self.server.site.render(path)
        return make

    def in_flight(self) -> int:
        answered = sum(1 for p, _, _ in list(self.server.log) if p.split("?")[0] in self.paths)
        return len(self.log) - answered

    def describe(self) -> str:
        return f"{len(self.log)} requests started, {self.in_flight()} in flight"


class Cluster:
    """A master on a fixed port with --workers 0 and a key file, plus remote workers."""

    def __init__(self, procs, project: Path, tmp_path: Path, server, *extra: object) -> None:
        self.procs, self.project, self.server = procs, project, server
        self.address = f"127.0.0.1:{free_port()}"
        self.port = int(self.address.rsplit(":", 1)[1])
        self.key = write_key(tmp_path / "crawl.key")
        self.out = project / "out.jsonl"
        self.jobdir = tmp_path / "job"
        seeds = write_seeds(project, server.url)
        self.args = [seeds, "--bind", self.address, "--authkey-file", self.key, "--workers", 0,
                     "-o", self.out, "--jobdir", self.jobdir, *FAST, *map(str, extra)]

    def master(self):
        """Start the master (the same command every time) and wait until it listens."""
        proc = self.procs.master(self.args, self.project)
        assert listening_address(proc) == self.address, proc.describe()
        return proc

    def worker(self, name: str = "worker", threads: int = 4):
        return self.procs.worker(self.address, self.key, ["-c", threads], cwd=self.project,
                                 name=name)

    def stats(self) -> dict:
        return read_stats(self.jobdir)


class Monitor:
    """Asks a running master for its frontier counters (control.status(), as a worker could)."""

    def __init__(self, address: str, key_file: Path) -> None:
        host, port = address.rsplit(":", 1)
        self.address, self.key = (host, int(port)), keyfile.read(str(key_file))
        self.proxies = None

    def status(self) -> dict:
        manager.set_call_timeout(2.0)
        try:
            if self.proxies is None:
                self.proxies = manager.connect(self.address, self.key)
            return self.proxies["control"].status()
        except (OSError, EOFError) as exc:
            self.proxies = None
            return {"error": repr(exc)}


def read_stats(jobdir: Path) -> dict:
    path = Path(jobdir) / "stats.json"
    assert path.exists(), f"no {path}"
    return json.loads(path.read_text())


def assert_crawl_complete(out: Path, server, stats: dict, paths=None, failed: int = 0) -> list:
    """Every page's item exactly once in `out`, and every admitted URL settled."""
    items = read_jsonl(out)
    assert_one_item_per_page(items, server, paths)
    admitted = len(site_urls(server, paths)) + failed
    assert stats["closed_by"] == "finished", stats
    assert stats["pages_done"] + stats["pages_failed"] == admitted, stats
    assert stats["pages_failed"] == failed, stats
    assert stats["items"] == len(items), stats
    return items


def waiting_in_call(worker_pid: int, master_port: int) -> bool:
    """True when a request sent by the worker sits unread in the master's end of their
    connection (the master is stopped and the worker waits for its reply)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{worker_pid}/fd"):
        try:
            link = os.readlink(f"/proc/{worker_pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    table = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
            rx = int(f[4].split(":")[1], 16)
            table.append((local, remote, rx, int(f[9])))
    mine = {local for local, remote, _, inode in table
            if inode in inodes and remote == master_port}
    return any(local == master_port and remote in mine and rx > 0
               for local, remote, rx, _ in table)


def wal_commit_frames(wal: Path) -> tuple[int, list[int]]:
    """(frame size, indexes of the valid commit frames) of a SQLite WAL file."""
    data = wal.read_bytes()
    assert len(data) >= 32, f"{wal}: {len(data)} bytes, no WAL header"
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    frame, commits, n = 24 + page_size, [], 0
    while 32 + (n + 1) * frame <= len(data):
        head = data[32 + n * frame:32 + n * frame + 24]
        if head[8:16] != salts:
            break
        if struct.unpack(">I", head[4:8])[0]:
            commits.append(n)
        n += 1
    return frame, commits


def exit_status(proc, timeout: float) -> int:
    """proc.wait(timeout), but a process that hangs fails the test with its Python stacks
    (from py-spy, when the venv has it) as well as its output."""
    try:
        return proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    stacks = "(py-spy not installed)"
    spy = Path(sys.executable).with_name("py-spy")
    if spy.exists():
        try:
            run = subprocess.run([str(spy), "dump", "--pid", str(proc.pid)], capture_output=True,
                                 text=True, timeout=20)
            stacks = run.stdout + run.stderr
        except subprocess.TimeoutExpired:
            stacks = "(py-spy timed out)"
    raise AssertionError(f"{proc.name} still running after {timeout:.0f} s\n--- stacks:\n"
                         f"{stacks}\n{proc.describe()}")


# -- 1. a worker killed between lease and result -------------------------------------------------
def test_worker_killed_with_requests_in_flight(serve, project, procs, tmp_path):
    site = serve(Site(pages=60, links=3), delay=0.3)
    starts = Starts(site)
    cluster = Cluster(procs, project, tmp_path, site)
    master = cluster.master()
    victim = cluster.worker("victim")
    # Only the victim is working yet: whatever is in flight is its.
    wait_for(lambda: len(starts.log) >= 5 and starts.in_flight() >= 1, 15,
             "the victim to have requests in flight", describe=starts.describe)
    survivor = cluster.worker("survivor")  # still starting: what is in flight is the victim's
    victim.send(signal.SIGKILL)
    assert victim.wait(5) == -signal.SIGKILL

    assert master.wait(40) == 0, master.describe()
    assert survivor.wait(15) == 0, survivor.describe()
    assert_no_process_left(master, survivor)
    stats = cluster.stats()
    assert_crawl_complete(cluster.out, site, stats)
    # The victim's leases had to expire before their pages were fetched again.
    assert stats["retries"] >= 1, stats
    assert summary_line(master).group(1) == "finished"


# -- 2. a worker killed while it waits inside a call to the master --------------------------------
def test_worker_killed_inside_a_master_call(serve, project, procs, tmp_path):
    site = serve(Site(pages=60, links=3), delay=0.1)
    cluster = Cluster(procs, project, tmp_path, site)
    master = cluster.master()
    victim, other = cluster.worker("victim"), cluster.worker("other")
    wait_for(lambda: count_lines(cluster.out) >= 5, 15, "5 items in the output",
             describe=master.describe)

    master.send(signal.SIGSTOP)
    try:
        wait_for(lambda: waiting_in_call(victim.pid, cluster.port), 5,
                 "the victim to be waiting on a call to the stopped master",
                 describe=victim.describe, interval=0.01)
        victim.send(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
    finally:
        master.send(signal.SIGCONT)

    assert master.wait(40) == 0, master.describe()
    assert other.wait(15) == 0, other.describe()
    assert_no_process_left(master, other)
    assert_crawl_complete(cluster.out, site, cluster.stats())


# -- 3. the master killed and restarted with the same command -------------------------------------
def test_master_killed_and_restarted_workers_reconnect(serve, project, procs, tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.2)
    total = len(site.site.paths())
    cluster = Cluster(procs, project, tmp_path, site)
    first = cluster.master()
    workers = [cluster.worker(), cluster.worker()]
    wait_for(lambda: count_lines(cluster.out) >= 15, 20, "15 items in the output",
             describe=first.describe)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    assert count_lines(cluster.out) < total, "the crawl was over before the kill"
    for worker in workers:  # they notice, and keep trying rather than exit
        worker.wait_output("lost the master", 10, stream="stderr")
        assert worker.alive(), worker.describe()

    second = cluster.master()
    assert second.wait(40) == 0, second.describe()
    for worker in workers:  # never restarted: they reconnected by themselves
        assert worker.wait(15) == 0, worker.describe()
    assert_no_process_left(second, *workers)
    assert_crawl_complete(cluster.out, site, cluster.stats())
    assert summary_line(second).group(1, 2) == ("finished", str(total)), second.describe()


# -- 4. the master stopped for longer than a call may take ------------------------------------------
def test_master_stopped_past_call_timeout(serve, project, procs, tmp_path):
    site = serve(Site(pages=80, links=3), delay=0.1)
    cluster = Cluster(procs, project, tmp_path, site)
    master = cluster.master()
    workers = [cluster.worker(), cluster.worker()]
    wait_for(lambda: count_lines(cluster.out) >= 10, 15, "10 items in the output",
             describe=master.describe)

    stopped = time.monotonic()
    master.send(signal.SIGSTOP)
    try:
        # Every worker calls at least every LEASE_TIMEOUT/3 (a renewal), and each call has a
        # deadline of CALL_TIMEOUT: each one must notice within a few CALL_TIMEOUTs.
        for worker in workers:
            worker.wait_output("lost the master",
                               stopped + 3 * CALL_TIMEOUT + 1 - time.monotonic(), "stderr")
        # The fault: stopped past CALL_TIMEOUT and past LEASE_TIMEOUT too.
        time.sleep(max(0.0, stopped + 2 * LEASE_TIMEOUT - time.monotonic()))
        for worker in workers:
            assert worker.alive(), worker.describe()
    finally:
        master.send(signal.SIGCONT)

    assert master.wait(40) == 0, master.describe()
    for worker in workers:
        assert worker.wait(15) == 0, worker.describe()
    assert_no_process_left(master, *workers)
    assert_crawl_complete(cluster.out, site, cluster.stats())


# -- 5. a worker stopped past its leases: its late results are ignored --------------------------------
def test_worker_stopped_past_its_leases(serve, project, procs, tmp_path):
    site = serve(Site(pages=150, links=3), delay=0.2)
    starts = Starts(site)
    cluster = Cluster(procs, project, tmp_path, site)
    master = cluster.master()
    monitor = Monitor(cluster.address, cluster.key)
    victim = cluster.worker("victim")
    wait_for(lambda: len(starts.log) >= 5 and starts.in_flight() >= 1, 15,
             "the victim to have requests in flight", describe=starts.describe)
    other = cluster.worker("other")

    stopped = time.monotonic()
    victim.send(signal.SIGSTOP)
    try:
        wait_for(lambda: monitor.status().get("leases_expired", 0) >= 1, 10,
                 "the master to expire the stopped worker's leases",
                 describe=lambda: str(monitor.status()), interval=0.1)
        time.sleep(max(0.0, stopped + 2 * LEASE_TIMEOUT - time.monotonic()))  # the fault
    finally:
        victim.send(signal.SIGCONT)
    wait_for(lambda: monitor.status().get("stale_results", 0) >= 1, 10,
             "the master to receive (and ignore) the late results",
             describe=lambda: f"{monitor.status()}\n{victim.describe()}", interval=0.1)

    assert master.wait(40) == 0, master.describe()
    for worker in (victim, other):
        assert worker.wait(15) == 0, worker.describe()
    assert_no_process_left(master, victim, other)
    stats = cluster.stats()
    assert_crawl_complete(cluster.out, site, stats)
    assert stats["retries"] >= 1, stats
    assert stats.get("stale_results", 0) >= 1, stats


# -- 6. a torn journal ----------------------------------------------------------------------------------
def _crawl_and_kill_master(site, project, procs, tmp_path):
    """Run a master with --jobdir and 2 local workers, SIGKILL it mid-crawl; (args, out, jobdir)."""
    seeds = write_seeds(project, site.url)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    args = [seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, *FAST]
    master = procs.master(args, project)
    wait_for(lambda: count_lines(out) >= 20, 20, "20 items in the output",
             describe=master.describe)
    master.send(signal.SIGKILL)
    assert master.wait(5) == -signal.SIGKILL
    assert count_lines(out) < len(site.site.paths()), "the crawl was over before the kill"
    # Its local workers notice they are orphans and leave.
    assert_no_process_left(master)
    return args, out, jobdir


def test_torn_journal_main_file_is_refused(serve, project, procs, tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.05)
    args, out, jobdir = _crawl_and_kill_master(site, project, procs, tmp_path)
    journal = jobdir / "journal.sqlite"
    # Move everything the WAL holds into the main file (as an automatic checkpoint would),
    # then tear the main file in half.
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    db.close()
    size = journal.stat().st_size
    assert size >= 4 * 4096, f"journal only {size} bytes"
    os.truncate(journal, size // 2)
    out_before, requests_before = out.read_bytes(), len(site.log)

    again = procs.master(args, project)
    assert again.wait(15) == 2, again.describe()
    assert re.search(r"journal", again.stderr, re.I), again.describe()
    assert re.search(r"damaged|corrupt|malformed|cannot be resumed", again.stderr, re.I), \
        again.describe()
    assert "master listening" not in again.stdout, again.describe()
    assert_no_process_left(again)
    assert out.read_bytes() == out_before, "the output was changed by a refused resume"
    assert len(site.log) == requests_before, "pages were fetched by a refused resume"


def test_torn_journal_wal_resumes_or_is_refused(serve, project, procs, tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.05)
    args, out, jobdir = _crawl_and_kill_master(site, project, procs, tmp_path)
    wal = jobdir / "journal.sqlite-wal"
    assert wal.exists(), f"no WAL file in {sorted(os.listdir(jobdir))}"
    frame, commits = wal_commit_frames(wal)
    assert len(commits) >= 2, f"the WAL holds {len(commits)} transactions"
    # A torn write: the last transaction's commit frame is cut in the middle.
    os.truncate(wal, 32 + commits[-1] * frame + frame // 2)

    again = procs.master(args, project)
    status = again.wait(40)
    assert_no_process_left(again)
    # SQLite drops a transaction whose commit frame is torn: the crawl resumes from the one
    # before it, every page still once in the output
    assert status == 0, again.describe()
    assert_crawl_complete(out, site, read_stats(jobdir))


# -- 7. retries and failures ----------------------------------------------------------------------------
def test_retries_then_failures_and_404_failed(serve, project, run_master, tmp_path):
    site = serve(Site(pages=20, links=3))
    closed = free_port()
    base = site.url.rstrip("/")
    busy, gone = "/always-503.html", "/gone.html"
    refused = f"http://127.0.0.1:{closed}/refused.html"
    status, ctype, body = site.site.render("/")
    links = f'<a href="{busy}">busy</a> <a href="{gone}">gone</a> <a href="{refused}">off</a>'
    front = body.replace(b"</h1>", b"</h1>" + links.encode())
    site.extra["/"] = lambda: (status, ctype, front)
    site.extra[busy] = lambda: (503, "text/html", b"<html><title>busy</title></html>")
    retry_times = 3
    seeds = write_seeds(project, site.url)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    # The closed port is another service of the seed's host: trusted here, so it is tried.
    master = run_master([seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, *FAST,
                         "-s", f"RETRY_TIMES={retry_times}",
                         "-s", f'ADDRESS_GUARD_TRUSTED=["http://127.0.0.1:{closed}"]'],
                        timeout=40)
    assert master.returncode == 0, master.describe()

    stats = read_stats(jobdir)
    items = assert_crawl_complete(out, site, stats, failed=3)
    # The closed port is another origin: its robots.txt fails first, and names why.
    assert stats["failed_by_reason"] == {"http_503": 1, "robots_unavailable:connection": 1,
                                         "http_404": 1}, stats
    assert [i for i in items if i["url"] == base + gone] == []  # not 2xx: no callback
    counts = requested(site)
    assert counts[busy] == retry_times + 1, counts
    assert counts[gone] == 1, counts
    starts = sorted(start for path, start, _ in list(site.log) if path == busy)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(gap >= 0.2 for gap in gaps), f"retries without backoff: {gaps}"
    failures = sorted(line.split("\t") for line in
                      (jobdir / "failures.tsv").read_text(encoding="utf-8").splitlines())
    assert failures == sorted([["http_503", base + busy], ["robots_unavailable:connection", refused],
                               ["http_404", base + gone]]), failures
    assert re.search(r"failed\(http_503\): 1", master.stdout), master.describe()
    assert re.search(r"failed\(robots_unavailable:connection\): 1", master.stdout), \
        master.describe()


# -- 8. graceful stops ------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_to_worker_returns_its_leases(serve, project, procs, tmp_path, signum):
    site = serve(Site(pages=60, links=3), delay=0.2)
    starts = Starts(site)
    cluster = Cluster(procs, project, tmp_path, site)
    master = cluster.master()
    leaver = cluster.worker("leaver")
    wait_for(lambda: len(starts.log) >= 5 and starts.in_flight() >= 1, 15,
             "the leaving worker to have requests in flight", describe=starts.describe)
    stayer = cluster.worker("stayer")

    sent = time.monotonic()
    leaver.send(signum)
    assert exit_status(leaver, 10) == 0, leaver.describe()
    took = time.monotonic() - sent
    assert took < CALL_TIMEOUT + 1.5, f"the worker took {took:.1f} s to leave"
    assert master.alive(), "the crawl was over before the worker left"

    assert master.wait(40) == 0, master.describe()
    assert stayer.wait(15) == 0, stayer.describe()
    assert_no_process_left(master, stayer)
    stats = cluster.stats()
    assert_crawl_complete(cluster.out, site, stats)
    # Its leases went back at once: none had to expire (an expiry counts as a retry).
    assert stats["retries"] == 0, stats


def test_sigterm_to_a_worker_with_copies_stops_them_all(serve, project, procs, tmp_path):
    site = serve(Site(pages=60, links=3), delay=5.0)  # the crawl lasts far beyond the bounds
    cluster = Cluster(procs, project, tmp_path, site)
    cluster.master()
    parent = procs.worker(cluster.address, cluster.key, ["-c", 2, "-p", 2], cwd=project)
    monitor = Monitor(cluster.address, cluster.key)
    wait_for(lambda: monitor.status().get("workers") == 2, 15, "both copies to join")
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
    assert len(children) == 1, children
    parent.send(signal.SIGTERM)  # to the parent alone, not its group
    assert exit_status(parent, 15) == 0, parent.describe()
    assert not Path(f"/proc/{children[0]}").exists(), "the copy outlived its parent"


def test_sigint_to_master_then_resume(serve, project, procs, tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.05)
    total = len(site.site.paths())
    seeds = write_seeds(project, site.url)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    args = [seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, *FAST,
            "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=4"]
    first = procs.master(args, project)
    wait_for(lambda: count_lines(out) >= 15, 20, "15 items in the output",
             describe=first.describe)
    first.send(signal.SIGINT)
    assert first.wait(15) == 130, first.describe()
    assert_no_process_left(first)
    assert summary_line(first).group(1) == "interrupted", first.describe()
    partial = read_jsonl(out)
    assert 15 <= len(partial) < total, len(partial)
    assert len({i["url"] for i in partial}) == len(partial), "duplicate items"
    assert read_stats(jobdir)["items"] == len(partial)

    second = procs.master(args, project)
    assert second.wait(40) == 0, second.describe()
    assert_no_process_left(second)
    assert_crawl_complete(out, site, read_stats(jobdir))
    assert summary_line(second).group(1, 2) == ("finished", str(total)), second.describe()


# -- 9. closing early -------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting,value,reason,counted,slack", [
    ("CLOSESPIDER_ITEMCOUNT", 10, "closespider_itemcount", "items", 200),
    ("CLOSESPIDER_TIMEOUT", 2, "closespider_timeout", "seconds", 4),
])
def test_closespider(setting, value, reason, counted, slack, serve, project, run_master,
                     tmp_path):
    site = serve(Site(pages=200, links=3), delay=0.2)
    total = len(site.site.paths())
    seeds = write_seeds(project, site.url)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    master = run_master([seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, *FAST,
                         "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "-s", f"{setting}={value}"],
                        timeout=30)
    assert master.returncode == 0, master.describe()
    stats = read_stats(jobdir)
    assert stats["closed_by"] == reason, stats
    assert summary_line(master).group(1) == reason, master.describe()
    items = read_jsonl(out)
    urls = [i["url"] for i in items]
    assert len(urls) == len(set(urls)), "duplicate items"
    assert set(urls) <= site_urls(site)
    assert len(items) == stats["items"] == stats["pages_done"] < total, stats
    assert stats["pages_failed"] == 0, stats
    assert max(requested(site).values()) == 1
    assert value <= stats[counted] < value + slack, stats  # closed at the bound, soon after it
