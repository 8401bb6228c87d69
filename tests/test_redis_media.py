"""Media pipelines and WARC output on the Redis backend, with a real redis-server, real
masters and workers, real kills: each image is fetched once for the cluster however many
items and workers refer to it, an item is written only once its images are settled, and a
SIGKILLed master resumes with each item and each WARC record written exactly once."""
from __future__ import annotations

import signal
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.sitegen import Site  # noqa: E402
from mediasite import SPIDER, MediaSite, image_bytes  # noqa: E402
from procs import count_lines, read_jsonl, wait_for, write_seeds  # noqa: E402
from test_media import IMAGES, md5, sha1  # noqa: E402
from test_media_faults import PAGES, gated_site  # noqa: E402
import test_redis_e2e  # noqa: E402
from test_redis_e2e import FAST, RedisCluster, assert_items_once  # noqa: E402

redis_server = test_redis_e2e.redis_server  # the same fixture: a server per test



@pytest.fixture
def media_project(project: Path) -> Path:
    (project / "spiders" / "media.py").write_text(SPIDER)
    return project


def test_an_image_on_20_pages_is_fetched_once_by_3_workers_on_redis(media_project, run_master,
                                                                    redis_server, tmp_path):
    files = {"/img/shared.png": (200, image_bytes(0), "image/png")}
    files.update({f"/img/{i}.jpg": (200, image_bytes(i, kind="JPEG"), "image/jpeg")
                  for i in range(1, 21)})
    pages = {f"/p/{i}": (["/img/shared.png", f"/img/{i + 1}.jpg", "/img/missing.png"], [],
                         [f"/p/{i + 1}"] if i + 1 < 20 else []) for i in range(20)}
    site = MediaSite(pages, files)
    try:
        store, out = tmp_path / "images", media_project / "out.jsonl"
        proc = run_master([write_seeds(media_project, site.url + "/p/0"), "--spider", "media",
                           "--backend", redis_server.url, "--workers", 3, "-o", out, *IMAGES,
                           "-s", f"IMAGES_STORE={store}", *FAST], timeout=60)
        assert proc.returncode == 0, proc.describe()
        items = {item["url"]: item for item in read_jsonl(out)}
        assert sorted(items) == sorted(f"{site.url}/p/{i}" for i in range(20))
        assert site.count("/img/shared.png") == 1, site.started
        assert all(site.count(f"/img/{i}.jpg") == 1 for i in range(1, 21)), site.started
        assert site.count("/img/missing.png") == 1, site.started  # a failure, once too
        shared, missing = site.url + "/img/shared.png", site.url + "/img/missing.png"
        for i in range(20):
            entries = items[f"{site.url}/p/{i}"]["images"]
            assert [e["url"] for e in entries] == [shared, f"{site.url}/img/{i + 1}.jpg",
                                                   missing]
            for entry in entries[:2]:
                assert entry["path"] == f"full/{sha1(entry['url'])}.jpg"
                assert entry["status"] == "downloaded"
                assert entry["checksum"] == md5(store / entry["path"])
            assert entries[2] == {"url": missing, "path": None, "checksum": None,
                                  "status": "failed", "reason": "http_404"}
        assert len(list((store / "full").iterdir())) == 21
        client = redis_server.client()  # the outcomes stay in Redis, for a resumed master
        assert client.hlen("crawler:media:{media.0}:media") == 22
    finally:
        site.close()


def test_workers_write_to_an_fsspec_store_on_redis(media_project, run_master, redis_server,
                                                   tmp_path):
    pytest.importorskip("fsspec")
    files = {f"/img/{i}.png": (200, image_bytes(i), "image/png") for i in range(4)}
    pages = {f"/p/{i}": ([f"/img/{i}.png", "/img/0.png"], [], [f"/p/{i + 1}"] if i < 3 else [])
             for i in range(4)}
    site = MediaSite(pages, files)
    try:
        store, out = tmp_path / "bucket", media_project / "out.jsonl"
        proc = run_master([write_seeds(media_project, site.url + "/p/0"), "--spider", "media",
                           "--backend", redis_server.url, "--workers", 2, "-o", out, *IMAGES,
                           "-s", f"IMAGES_STORE=file://{store}/images",
                           "-s", "MEDIA_WRITTEN_BY=workers", *FAST], timeout=60)
        assert proc.returncode == 0, proc.describe()
        items = read_jsonl(out)
        assert len(items) == 4
        assert [site.count(f"/img/{i}.png") for i in range(4)] == [1, 1, 1, 1]
        for item in items:
            for entry in item["images"]:
                assert entry["status"] == "downloaded"
                assert entry["checksum"] == md5(store / "images" / entry["path"])
        assert len(list((store / "images" / "full").iterdir())) == 4
    finally:
        site.close()


def gated_cluster(procs, project, tmp_path, redis_server, site):
    """A Redis crawl of the gated site with ImagesPipeline; the store folder."""
    store = tmp_path / "images"
    return RedisCluster(procs, project, tmp_path, SimpleNamespace(url=site.url + "/p/0"),
                        redis_server, "--spider", "media", *IMAGES,
                        "-s", f"IMAGES_STORE={store}"), store


def wait_until_only_the_slow_image_is_left(site, redis_server, master) -> None:
    client = redis_server.client()
    wait_for(lambda: site.count("/img/slow.png") and
             int(client.hget("crawler:media:{media.0}:stats", "done") or 0) >= 2 * PAGES,
             20, "every page and other image settled", describe=master.describe)


def test_items_waiting_for_media_survive_a_master_sigkill_on_redis(media_project, procs,
                                                                   tmp_path, redis_server):
    site = gated_site()
    try:
        cluster, store = gated_cluster(procs, media_project, tmp_path, redis_server, site)
        first = cluster.master()
        workers = [cluster.worker(), cluster.worker()]
        # Every page settled (its item read by the master, held): all wait for the slow one.
        wait_until_only_the_slow_image_is_left(site, redis_server, first)
        first.send(signal.SIGKILL)
        assert first.wait(5) == -signal.SIGKILL
        assert not cluster.out.exists() or read_jsonl(cluster.out) == []

        second = cluster.master()
        assert "resuming crawl 'media' in Redis" in second.stdout, second.describe()
        site.gates["/img/slow.png"].set()
        assert second.wait(40) == 0, second.describe()
        for worker in workers:
            assert worker.wait(15) == 0, worker.describe()
        items = read_jsonl(cluster.out)
        assert sorted(item["url"] for item in items) == \
            sorted(f"{site.url}/p/{i}" for i in range(PAGES))  # each exactly once
        for item in items:
            for entry in item["images"]:
                assert entry["status"] in ("downloaded", "uptodate"), item
                assert entry["checksum"] == md5(store / entry["path"])
        # Its lease was in Redis, not in the killed master: fetched once, not again.
        assert site.count("/img/slow.png") == 1, site.started
        assert all(site.count(f"/img/{i + 1}.png") == 1 for i in range(PAGES)), site.started
    finally:
        site.close()


def test_warc_records_exactly_once_across_a_master_kill_on_redis(serve, project, procs,
                                                                 tmp_path, redis_server):
    pytest.importorskip("warcio")
    from test_warc import read_warc, warc_files
    site = serve(Site(pages=80, links=3), delay=0.1)
    out = project / "crawl.warc.gz"
    cluster = RedisCluster(procs, project, tmp_path, site, redis_server, "-o", out,
                           "-s", "WARC_MAX_SIZE=20000")
    first = cluster.master()
    workers = [cluster.worker(), cluster.worker()]
    wait_for(lambda: count_lines(cluster.out) >= 15, 30, "15 items in the output",
             describe=first.describe)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    assert count_lines(cluster.out) < len(site.site.paths()), "over before the kill"
    second = cluster.master()
    assert second.wait(60) == 0, second.describe()
    for worker in workers:
        assert worker.wait(15) == 0, worker.describe()
    assert_items_once(cluster.out, site)
    files = warc_files(project)
    assert len(files) > 3  # rotated, and resumed across rotations
    records = read_warc(*files)
    base = site.url.rstrip("/")
    responses = Counter(uri for kind, uri, _, _, _ in records if kind == "response")
    assert responses == Counter({base + p: 1 for p in site.site.paths()} |
                                {base + "/robots.txt": 1})
    requests = Counter(uri for kind, uri, _, _, _ in records if kind == "request")
    assert requests == responses


def test_an_interrupted_crawl_on_redis_keeps_its_waiting_items_for_the_resume(
        media_project, procs, tmp_path, redis_server):
    site = gated_site()
    try:
        cluster, _ = gated_cluster(procs, media_project, tmp_path, redis_server, site)
        first = cluster.master()
        worker = cluster.worker()
        wait_until_only_the_slow_image_is_left(site, redis_server, first)
        first.send(signal.SIGINT)
        assert first.wait(30) == 130, first.describe()
        assert worker.wait(15) == 0, worker.describe()
        # Held for their slow image: not written as "not_downloaded", kept in Redis.
        assert not cluster.out.exists() or read_jsonl(cluster.out) == []

        second = cluster.master()
        cluster.worker("again")
        site.gates["/img/slow.png"].set()
        assert second.wait(40) == 0, second.describe()
        items = read_jsonl(cluster.out)
        assert sorted(item["url"] for item in items) == \
            sorted(f"{site.url}/p/{i}" for i in range(PAGES))  # each exactly once
        for item in items:
            assert [e["status"] for e in item["images"]] == ["downloaded", "downloaded"], item
    finally:
        site.close()
