"""The Redis backend end to end: a real redis-server (its own folder, a free loopback port),
real masters and workers, real kills. Each crawl's items must be in its feed exactly once."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.sitegen import Site  # noqa: E402
from procs import (QUIET, count_lines, free_port, read_jsonl, wait_for,  # noqa: E402
                   write_key, write_seeds)
from redis_server import start_or_skip  # noqa: E402
from test_e2e import (assert_no_process_left, assert_one_item_per_page,  # noqa: E402
                      listening_address)
from test_politeness import close_starts, full_log, max_in_flight, overlapping_pairs  # noqa: E402

LEASE_TIMEOUT = 2.0
FAST = ["-s", f"LEASE_TIMEOUT={LEASE_TIMEOUT}", "-s", "CALL_TIMEOUT=1.5",
        "-s", "RECONNECT_MAX_DELAY=1", "--status", "off", *QUIET]


@pytest.fixture
def redis_server(tmp_path):
    server = start_or_skip(tmp_path / "redis")
    yield server
    server.kill()


def crawl_keys(client, crawl: str) -> dict[bytes, bytes]:
    """Every key of a crawl with its DUMP (type and value), to see that nothing touched it."""
    return {k: client.dump(k) for k in client.scan_iter(match=f"crawler:{crawl}:*")}


class RedisCluster:
    """A master on a fixed port with --workers 0 on Redis, plus remote workers."""

    def __init__(self, procs, project, tmp_path, site, server, *extra) -> None:
        self.procs, self.project = procs, project
        self.address = f"127.0.0.1:{free_port()}"
        self.key = write_key(tmp_path / "crawl.key")
        self.out = project / "out.jsonl"
        self.stats_file = tmp_path / "stats.json"
        self.args = [write_seeds(project, site.url), "--backend", server.url, "--bind",
                     self.address, "--authkey-file", self.key, "--workers", 0, "-o", self.out,
                     "--stats", self.stats_file, *FAST, *map(str, extra)]

    def master(self):
        proc = self.procs.master(self.args, self.project)
        assert listening_address(proc) == self.address, proc.describe()
        return proc

    def worker(self, name="worker", threads=4):
        return self.procs.worker(self.address, self.key, ["-c", threads], cwd=self.project,
                                 name=name)


def assert_items_once(out, site):
    items = read_jsonl(out)
    assert_one_item_per_page(items, site)
    return items


# -- the vertical slice ---------------------------------------------------------------------
def test_crawl_on_redis_end_to_end(serve, project, run_master, redis_server):
    site = serve(Site(pages=60))
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--backend", redis_server.url,
                         "--workers", 2, "-o", out, *FAST], timeout=40)
    assert master.returncode == 0, master.describe()
    assert_items_once(out, site)
    assert "crawl finished" in master.stdout, master.describe()
    client = redis_server.client()
    keys = list(client.scan_iter())
    assert keys and all(k.startswith(b"crawler:generic:") for k in keys), keys
    assert client.hget("crawler:generic:meta", "finished") == b"1"
    again = run_master([write_seeds(project, site.url), "--backend", redis_server.url,
                        "--workers", 2, "-o", out, *FAST], timeout=20, name="again")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.describe()


# -- guarantees -----------------------------------------------------------------------------
def test_sigkilled_worker_loses_nothing(serve, project, procs, tmp_path, redis_server):
    site = serve(Site(pages=60, links=3), delay=0.3)
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server)
    master = cluster.master()
    victim = cluster.worker("victim")
    client = redis_server.client()
    wait_for(lambda: client.hlen("crawler:generic:{generic.0}:leases") >= 2 and
             count_lines(cluster.out) >= 3, 20, "the victim to hold leases",
             describe=master.describe)
    survivor = cluster.worker("survivor")
    victim.send(signal.SIGKILL)
    assert victim.wait(5) == -signal.SIGKILL
    assert master.wait(60) == 0, master.describe()
    assert survivor.wait(15) == 0, survivor.describe()
    assert_no_process_left(master, survivor)
    assert_items_once(cluster.out, site)
    stats = json.loads(cluster.stats_file.read_text())
    assert stats["leases_expired"] >= 1, stats  # the victim's leases came back by expiring


def test_sigkilled_master_resumes_each_item_once(serve, project, procs, tmp_path, redis_server):
    site = serve(Site(pages=100, links=3), delay=0.2)
    total = len(site.site.paths())
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server)
    first = cluster.master()
    workers = [cluster.worker(), cluster.worker()]
    wait_for(lambda: count_lines(cluster.out) >= 15, 30, "15 items in the output",
             describe=first.describe)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    assert count_lines(cluster.out) < total, "the crawl was over before the kill"
    second = cluster.master()
    assert "resuming crawl 'generic' in Redis" in second.stdout, second.describe()
    assert second.wait(60) == 0, second.describe()
    for worker in workers:  # they never needed the master to go on crawling
        assert worker.wait(15) == 0, worker.describe()
    assert_no_process_left(second, *workers)
    assert_items_once(cluster.out, site)


def test_politeness_holds_across_worker_processes(serve, project, procs, tmp_path,
                                                  redis_server):
    site = serve(Site(pages=30), delay=0.05)
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server,
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1", "-s", "DOWNLOAD_DELAY=0.1",
                           "-s", "RANDOMIZE_DOWNLOAD_DELAY=false")
    master = cluster.master()
    workers = [cluster.worker(f"w{i}") for i in range(3)]
    assert master.wait(60) == 0, master.describe()
    for worker in workers:
        assert worker.wait(15) == 0, worker.describe()
    assert_items_once(cluster.out, site)
    log = full_log(site, len(site.site.paths()) + 1)
    assert max_in_flight(log) == 1, f"overlapping requests: {overlapping_pairs(log)}"
    too_close = close_starts(log, 0.1)
    assert not too_close, f"request starts less than DOWNLOAD_DELAY=0.1 s apart: {too_close}"


def test_per_host_concurrency_across_worker_processes(serve, project, procs, tmp_path,
                                                      redis_server):
    site = serve(Site(pages=40), delay=0.1)
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server,
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2")
    master = cluster.master()
    workers = [cluster.worker(f"w{i}") for i in range(3)]
    assert master.wait(60) == 0, master.describe()
    for worker in workers:
        assert worker.wait(15) == 0, worker.describe()
    assert_items_once(cluster.out, site)
    peak = max_in_flight(full_log(site, len(site.site.paths()) + 1))
    assert peak == 2, f"{peak} requests in flight at once to one host (limit 2)"


def test_redis_restart_with_aof_loses_nothing(serve, project, procs, tmp_path):
    server = start_or_skip(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    try:
        site = serve(Site(pages=80, links=3), delay=0.1)
        cluster = RedisCluster(procs, project, tmp_path, site, server)
        master = cluster.master()
        workers = [cluster.worker(), cluster.worker()]
        wait_for(lambda: count_lines(cluster.out) >= 15, 30, "15 items in the output",
                 describe=master.describe)
        server.kill()  # SIGKILL: only what was fsynced to the append-only file survives
        server.start()
        assert master.wait(90) == 0, master.describe()
        for worker in workers:
            assert worker.wait(15) == 0, worker.describe()
        assert_items_once(cluster.out, site)
    finally:
        server.kill()


def test_two_crawls_share_one_redis_untouched(serve, project, run_master, redis_server):
    a, b = serve(Site(pages=30)), serve(Site(pages=20))
    out_a, out_b = project / "a.jsonl", project / "b.jsonl"
    run = [*FAST, "--backend", redis_server.url, "--workers", 2]
    first = run_master([write_seeds(project, a.url, name="a.txt"), "--crawl", "first",
                        "-o", out_a, *run], timeout=40, name="first")
    assert first.returncode == 0, first.describe()
    client = redis_server.client()
    before = crawl_keys(client, "first")
    second = run_master([write_seeds(project, b.url, name="b.txt"), "--crawl", "second",
                         "-o", out_b, *run], timeout=40, name="second")
    assert second.returncode == 0, second.describe()
    assert crawl_keys(client, "first") == before
    assert_items_once(out_a, a)
    assert_items_once(out_b, b)
    assert all(k.startswith((b"crawler:first:", b"crawler:second:")) for k in client.scan_iter())


def test_closespider_pagecount_on_redis(serve, project, run_master, redis_server):
    site = serve(Site(pages=200), delay=0.05)
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--backend", redis_server.url,
                         "--workers", 1, "-o", out, "-s", "CLOSESPIDER_PAGECOUNT=20", *FAST],
                        timeout=40)
    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    urls = [item["url"] for item in items]
    assert len(urls) == len(set(urls)) and 20 <= len(urls) < len(site.site.paths()), len(urls)
    assert "closespider_pagecount" in master.stdout, master.describe()


def test_crawl_on_a_three_node_redis_cluster(serve, project, run_master, tmp_path):
    from redis_server import cluster_or_skip
    cluster = cluster_or_skip(tmp_path / "cluster")
    try:
        sites = [serve(Site(pages=15), host=f"127.0.0.{i}") for i in (1, 2, 3)]
        out = project / "out.jsonl"
        master = run_master([write_seeds(project, *(s.url for s in sites)), "--backend",
                             cluster.url, "--workers", 2, "-o", out, "-s", "REDIS_SHARDS=6",
                             *FAST], timeout=60)
        assert master.returncode == 0, master.describe()
        items = read_jsonl(out)
        urls = [item["url"] for item in items]
        assert len(urls) == len(set(urls)), "duplicate items"
        expected = {s.url.rstrip("/") + p for s in sites for p in s.site.paths()}
        assert set(urls) == expected
        holding = [n.port for n in cluster.nodes if n.client().dbsize() > 0]
        assert len(holding) >= 2, f"every key on one node: {holding}"
    finally:
        cluster.kill()


def test_interrupted_crawl_resumes(serve, project, procs, tmp_path, redis_server):
    site = serve(Site(pages=100, links=3), delay=0.2)
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server)
    first = cluster.master()
    worker = cluster.worker()
    wait_for(lambda: count_lines(cluster.out) >= 5, 30, "5 items in the output",
             describe=first.describe)
    first.send(signal.SIGINT)
    assert first.wait(30) == 130, first.describe()
    # Closing reached the workers through Redis: they stopped leasing, the crawl is not over.
    assert count_lines(cluster.out) < len(site.site.paths()) - 20, count_lines(cluster.out)
    assert worker.wait(15) == 0, worker.describe()  # told the crawl stopped
    second = cluster.master()
    cluster.worker("again")
    assert second.wait(60) == 0, second.describe()
    assert_items_once(cluster.out, site)


# -- crawls that keep running, fed as scrapy-redis users feed theirs -------------------------
def test_a_crawl_on_redis_reads_its_start_urls_list_while_it_runs(procs, project, tmp_path,
                                                                   redis_server):
    from collections import Counter
    import threading
    from pageserver import serving
    from test_keep_running import site_handler
    log, lock = Counter(), threading.Lock()
    with serving(site_handler(log, lock)) as base:
        key, out = write_key(tmp_path / "key"), project / "out.jsonl"
        master = procs.master([write_seeds(project, base + "/a"), "--keep-running",
                               "--backend", redis_server.url, "--workers", 1,
                               "--authkey-file", key, "-o", out, *FAST], project)
        address = listening_address(master)
        wait_for(lambda: count_lines(out) == 2, 20, "the seed's 2 items",
                 describe=master.describe)
        client = redis_server.client()
        client.rpush("generic:start_urls", base + "/b", base + "/a")  # /a: known already
        client.lpush("generic:start_urls", base + "/c")
        wait_for(lambda: count_lines(out) == 5, 20, "5 items", describe=master.describe)
        assert client.llen("generic:start_urls") == 0
        stop = procs.module("crawler.stop", [address, "--authkey-file", key], project, "stop")
        assert stop.wait(20) == 0, stop.describe()
        assert master.wait(20) == 0, master.describe()
    urls = sorted(item["url"][len(base):] for item in read_jsonl(out))
    assert urls == ["/a", "/a1", "/b", "/b1", "/c"]
    assert log == {"/robots.txt": 1, "/a": 1, "/a1": 1, "/b": 1, "/b1": 1, "/c": 1}
