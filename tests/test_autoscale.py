"""crawler.autoscale: the sizing decisions, from fake readings (no clock, no threads); and
crawler.pool: a pool that grows and shrinks without losing a task."""
from __future__ import annotations

import re
import threading
import time

import pytest

from crawler.autoscale import Autoscaler, Limits
from crawler.pool import FetchPool
from pageserver import PageHandler, serving
from procs import read_jsonl, wait_for, write_seeds

LIMITS = Limits(start=16, cap=128, interval=0.5, max_cpu=0.9, max_lag=0.1,
                max_memory=1000, max_pushback=0.1)


def step(scaler, t, cpu_used, busy=None, lag=0.0, rss=0, results=0, pushback=0, samples=5):
    """One interval ending at t: `samples` readings, then a decision; cpu_used is the
    process's CPU seconds at t."""
    for _ in range(samples):
        scaler.sample(scaler.size if busy is None else busy, lag)
    return scaler.decide(t, cpu_used, rss, results, pushback)


def test_grows_in_proportion_to_cpu_headroom_when_every_thread_is_busy():
    scaler = Autoscaler(LIMITS, now=100.0, cpu_seconds=10.0)
    assert scaler.size == 16
    assert step(scaler, 100.5, 10.0 + 0.5 * 0.6) == 24   # 0.6 of a core: 0.9/0.6 = 1.5x
    assert step(scaler, 101.0, 10.3 + 0.5 * 0.05) == 48  # far from it: at most 2x
    assert scaler.reason.startswith("grow")


def test_grows_by_at_least_one_and_never_past_the_cap():
    scaler = Autoscaler(Limits(start=100, cap=128), now=0.0, cpu_seconds=0.0)
    assert step(scaler, 0.5, 0.5 * 0.89) == 101
    assert step(scaler, 1.0, 0.445 + 0.01) == 128
    assert step(scaler, 1.5, 0.455 + 0.01) == 128
    assert scaler.reason == "hold"


def test_holds_when_threads_are_idle():
    """Politeness or an empty frontier bounds the worker, not its pool: no growth."""
    scaler = Autoscaler(LIMITS, 0.0, 0.0)
    assert step(scaler, 0.5, 0.01, busy=8) == 16
    assert scaler.reason == "hold"


@pytest.mark.parametrize("reading, why", [
    ({"cpu_used": 0.5 * 0.95}, "cpu"),
    ({"cpu_used": 0.01, "lag": 0.2}, "lag"),
    ({"cpu_used": 0.01, "rss": 2000}, "memory"),
    ({"cpu_used": 0.01, "results": 100, "pushback": 11}, "pushback"),
])
def test_shrinks_by_a_tenth_when_overloaded(reading, why):
    scaler = Autoscaler(LIMITS, 0.0, 0.0)
    step(scaler, 0.5, 0.05)   # 16 -> 32
    assert scaler.size == 32
    reading = dict(reading)
    cpu = 0.05 + reading.pop("cpu_used")
    assert step(scaler, 1.0, cpu, **reading) == 28
    assert scaler.reason == f"shrink: {why}"


def test_pushback_and_results_are_counted_per_interval():
    scaler = Autoscaler(LIMITS, 0.0, 0.0)
    assert step(scaler, 0.5, 0.0, results=100, pushback=50) == 14   # half were 429/503
    assert step(scaler, 1.0, 0.0, results=200, pushback=51) == 28   # 1 of the next 100


def test_never_below_one_thread():
    scaler = Autoscaler(Limits(start=2, cap=8), 0.0, 0.0)
    sizes = [step(scaler, 0.5 * i, 0.0, lag=1.0) for i in range(1, 5)]
    assert sizes == [1, 1, 1, 1]


def test_due_after_each_interval():
    scaler = Autoscaler(LIMITS, 10.0, 0.0)
    assert not scaler.due(10.4)
    assert scaler.due(10.5)
    step(scaler, 10.5, 0.0)
    assert not scaler.due(10.9) and scaler.due(11.0)


def test_limits_from_settings_cap_the_start():
    from crawler.config import defaults
    s = dict(defaults(), CONCURRENT_REQUESTS=8, AUTOSCALE_MAX_MEMORY=2)
    limits = Limits.from_settings(s)
    assert (limits.start, limits.cap, limits.max_memory) == (8, 8, 2 * 2**20)


def test_pool_grows_shrinks_and_runs_every_task_once():
    gate, results, exits = threading.Event(), [], []
    pool = FetchPool(lambda t: (gate.wait(10), t)[1], lambda t, r: results.append(r),
                     on_exit=lambda: exits.append(1))
    pool.resize(4)
    for i in range(4):
        pool.put(i)
    wait_for(lambda: pool.busy == 4, 10, "4 busy threads")
    pool.resize(1)
    for i in range(4, 20):
        pool.put(i)
    assert pool.alive == 4 and pool.size == 1   # nobody is interrupted
    gate.set()
    wait_for(lambda: len(results) == 20, 10, "every task done")
    wait_for(lambda: pool.alive == 1 and len(exits) == 3, 10, "3 threads gone")
    assert sorted(results) == list(range(20))
    pool.resize(3)
    assert pool.alive == 3
    pool.close()
    wait_for(lambda: len(exits) == 6, 10, "every thread gone after close")
    assert pool.alive == 0


class SlowSite(PageHandler):
    """2,000 pages, each linking to five more (a tree); every answer 40 ms late, as a far
    host's would be. The server answers each connection on a thread of its own."""

    PAGES = 2000

    def do_GET(self):
        time.sleep(0.04)
        n = int(self.path.rsplit("/", 1)[-1] or 0) if self.path.startswith("/p/") else 0
        links = "".join(f'<a href="/p/{k}">{k}</a>' for k in range(5 * n + 1, 5 * n + 6)
                        if k < self.PAGES)
        self.send(200, f"<html><title>{n}</title>{links}</html>".encode())


def sizes_logged(text):
    return [int(m) for m in re.findall(r"\d+/(\d+) threads busy", text)]


def crawl_slow_site(run_master, project, *settings, pages=SlowSite.PAGES):
    """Crawl SlowSite (its first `pages`) with one local worker; the pool sizes its
    progress lines show."""
    site = type("SmallerSlowSite", (SlowSite,), {"PAGES": pages})
    with serving(site) as base:
        seeds = write_seeds(project, base + "/p/0")
        out = project / "out.jsonl"
        master = run_master([seeds, "--workers", 1, "-o", out, "-s", "ROBOTSTXT_OBEY=false",
                             "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=128", "-s",
                             "LOGSTATS_INTERVAL=0.25", *settings], timeout=60)
    assert master.returncode == 0, master.describe()
    assert len({item["url"] for item in read_jsonl(out)}) == pages
    sizes = sizes_logged(master.stderr + master.stdout)
    assert sizes, master.describe()
    return sizes


def test_worker_at_defaults_grows_on_a_latency_bound_site(run_master, project):
    """Every thread waits on the network, the CPU is idle: the pool grows past the 16 it
    starts with. The timer-lag limit is raised: how loaded the test machine is must not
    decide the outcome."""
    sizes = crawl_slow_site(run_master, project, "-s", "AUTOSCALE_MAX_LAG=30")
    assert max(sizes) > 16, sizes


def test_a_fixed_size_stays_fixed(run_master, project):
    sizes = crawl_slow_site(run_master, project, "-s", "AUTOSCALE_ENABLED=false",
                            "-s", "CONCURRENT_REQUESTS=12", pages=500)
    assert set(sizes) == {12}, sizes
