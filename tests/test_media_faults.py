"""Media downloads under faults, with real processes and real signals: an item waiting for
its images survives a master SIGKILL (JOBDIR), and a worker SIGKILLed with a download in
flight loses nothing (its lease returns)."""
from __future__ import annotations

import signal
import sqlite3
import threading
from types import SimpleNamespace

from mediasite import SPIDER, MediaSite, image_bytes
from procs import read_jsonl, wait_for
from test_faults import Cluster, Monitor
from test_media import IMAGES, md5, sha1

PAGES = 6


def gated_site():
    """PAGES pages in a line, each with its own image and the same slow one, whose answer
    waits for the gate."""
    files = {f"/img/{i}.png": (200, image_bytes(i), "image/png") for i in range(PAGES + 1)}
    pages = {f"/p/{i}": ([f"/img/{i + 1}.png", "/img/slow.png"], [],
                         [f"/p/{i + 1}"] if i + 1 < PAGES else []) for i in range(PAGES)}
    files["/img/slow.png"] = (200, image_bytes(99, (80, 80)), "image/png")
    site = MediaSite(pages, files)
    site.gates["/img/slow.png"] = threading.Event()
    return site


def cluster(procs, project, tmp_path, site):
    (project / "spiders" / "media.py").write_text(SPIDER)
    store = tmp_path / "images"
    start = SimpleNamespace(url=site.url + "/p/0")
    return Cluster(procs, project, tmp_path, start, "--spider", "media", *IMAGES,
                   "-s", f"IMAGES_STORE={store}"), store


def journaled_items(jobdir) -> int:
    db = sqlite3.connect(f"file:{jobdir}/journal.sqlite?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not made yet
        return 0
    finally:
        db.close()


def assert_items_complete(out, site, store) -> None:
    items = read_jsonl(out)
    assert sorted(item["url"] for item in items) == \
        sorted(f"{site.url}/p/{i}" for i in range(PAGES))  # each exactly once
    for item in items:
        for entry in item["images"]:
            assert entry["status"] in ("downloaded", "uptodate"), item
            assert entry["path"] == f"full/{sha1(entry['url'])}.jpg"
            assert entry["checksum"] == md5(store / entry["path"])


def test_items_waiting_for_media_survive_a_master_sigkill(procs, project, tmp_path):
    site = gated_site()
    try:
        crawl, store = cluster(procs, project, tmp_path, site)
        first = crawl.master()
        workers = [crawl.worker(), crawl.worker()]
        # Every item is journaled, and held: they all wait for the slow image.
        wait_for(lambda: site.count("/img/slow.png") and
                 journaled_items(crawl.jobdir) == PAGES, 20,
                 "every item journaled, the slow image asked for", describe=first.describe)
        first.send(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        assert not crawl.out.exists() or read_jsonl(crawl.out) == []

        second = crawl.master()
        # Both workers back before the slow image is let through: the crawl cannot end
        # (and stop answering) while one of them is still reconnecting.
        monitor = Monitor(crawl.address, crawl.key)
        wait_for(lambda: monitor.status().get("workers") == 2, 20,
                 "both workers reconnected", describe=second.describe)
        site.gates["/img/slow.png"].set()
        assert second.wait(40) == 0, second.describe()
        for worker in workers:
            assert worker.wait(15) == 0, worker.describe()
        assert_items_complete(crawl.out, site, store)
        # Asked again by the second master: the first one's lease died with it.
        assert site.count("/img/slow.png") == 2, site.started
    finally:
        site.close()


def test_a_worker_killed_during_a_download_loses_nothing(procs, project, tmp_path):
    site = gated_site()
    try:
        crawl, store = cluster(procs, project, tmp_path, site)
        master = crawl.master()
        victim = crawl.worker("victim")  # alone: the slow download is its
        wait_for(lambda: site.count("/img/slow.png"), 20, "the slow image asked for",
                 describe=victim.describe)
        victim.send(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        site.gates["/img/slow.png"].set()
        survivor = crawl.worker("survivor")

        assert master.wait(40) == 0, master.describe()
        assert survivor.wait(15) == 0, survivor.describe()
        assert_items_complete(crawl.out, site, store)
        assert site.count("/img/slow.png") == 2, site.started
        assert crawl.stats()["leases_expired"] >= 1
    finally:
        site.close()
