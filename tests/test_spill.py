"""A frontier with a memory bound: queued URLs beyond it spill to disk and come back per
host in the order an unbounded frontier gives them."""
import os
import random

import pytest

from crawler import config
from crawler.errors import UsageError
from crawler.frontier import DONE, Frontier
from crawler.sitegen import Site
from crawler.urls import fingerprint
from procs import QUIET, count_lines, read_jsonl, wait_for, write_seeds
from test_e2e import assert_each_page_fetched_once, assert_one_item_per_page


def tasks(n, hosts=3, seed=0, start=0):
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        host = f"h{i % hosts}.example"
        url = f"http://{host}/p{i}"
        task = {"url": url, "fp": fingerprint(url), "host": host, "depth": 1}
        if rng.random() < 0.3:
            task["priority"] = rng.choice([-5, 1, 10])
        if rng.random() < 0.2:
            task["meta"] = {"n": i}
        out.append(task)
    return out


def drain(frontier, per_call=3):
    """Lease and settle everything, per_call at a time; the order URLs were leased in."""
    order = []
    for _ in range(10_000):
        leased, _ = frontier.lease("w", per_call)
        if not leased and frontier.finished():
            return order
        for lease_id, task in leased:
            order.append((task["host"], task["url"], task.get("meta")))
            frontier.complete(lease_id, DONE)
    raise AssertionError("the frontier never finished")


def test_spilled_urls_come_back_per_host_in_priority_order(tmp_path):
    plain = Frontier(per_host=1)
    bounded = Frontier(per_host=1, memory_queue=10, spill_dir=str(tmp_path))
    batches = [tasks(150, seed=1), tasks(150, seed=2, start=150)[::-1]]
    for frontier in (plain, bounded):
        for batch in batches:
            frontier.admit(batch)
    assert bounded.queued == plain.queued == 300
    assert bounded.spilled == 290
    assert bounded.snapshot()["spilled"] == 290
    assert drain(bounded) == drain(plain)
    assert bounded.stats[DONE] == 300 and bounded.spilled == 0


def test_a_spilled_higher_priority_url_goes_before_queued_ones(tmp_path):
    frontier = Frontier(per_host=1, memory_queue=2, spill_dir=str(tmp_path))
    frontier.admit(tasks(4, hosts=1))
    urgent = {"url": "http://h0.example/urgent", "fp": fingerprint("http://h0.example/urgent"),
              "host": "h0.example", "depth": 1, "priority": 100}
    frontier.admit([urgent])
    assert frontier.spilled == 3
    assert drain(frontier)[0][1] == "http://h0.example/urgent"


def test_the_spill_file_is_never_left_on_disk(tmp_path):
    frontier = Frontier(memory_queue=5, spill_dir=str(tmp_path))
    frontier.admit(tasks(100))
    assert frontier.spilled == 95
    assert os.listdir(tmp_path) == []  # unlinked as soon as it was open
    frontier.close()
    assert os.listdir(tmp_path) == []


# -- a real master with tiny bounds ---------------------------------------------------------
TINY = ["-s", "FRONTIER_MEMORY_QUEUE=3", "-s", "FRONTIER_SEEN_DICT=5"]


def test_a_crawl_over_a_tiny_memory_bound_fetches_every_page_once(serve, project, run_master):
    site = serve(Site(pages=60))
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--workers", 2, "-o", out, *TINY,
                         *QUIET], timeout=60)
    assert master.returncode == 0, master.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert_each_page_fetched_once(site)


def test_a_killed_master_resumes_a_spilled_frontier(serve, project, procs, run_master, tmp_path):
    site = serve(Site(pages=150, links=3), delay=0.02)
    seeds, out, jobdir = write_seeds(project, site.url), project / "out.jsonl", tmp_path / "job"
    args = [seeds, "--workers", 1, "-o", out, "--jobdir", jobdir, *TINY, *QUIET]
    first = procs.master(args, project, "first")
    wait_for(lambda: count_lines(out) >= 20, 30, "20 items", describe=first.describe)
    first.kill_group()  # SIGKILL: the spill file goes with it, the journal stays
    second = run_master(args, name="second", timeout=90)
    assert second.returncode == 0, second.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert not [name for name in os.listdir(jobdir) if "spill" in name]


def test_the_spill_folder_must_be_a_writable_folder(tmp_path):
    with pytest.raises(UsageError, match="FRONTIER_SPILL_DIR.*not a writable folder"):
        config.merge({}, strict=[{"FRONTIER_SPILL_DIR": str(tmp_path / "missing")}])
    assert config.merge({"FRONTIER_SPILL_DIR": str(tmp_path)})["FRONTIER_SPILL_DIR"] == \
        str(tmp_path)
