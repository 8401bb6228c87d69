"""FilesPipeline and ImagesPipeline end to end: a real master, real workers, a loopback site
serving real image bytes. Downloads are frontier tasks; each URL is fetched once."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mediasite import SPIDER, MediaSite, image_bytes
from procs import QUIET, read_jsonl, write_seeds

IMAGES = ["-s", "ITEM_PIPELINES={\"crawler.pipelines.ImagesPipeline\": 1}"]
FILES = ["-s", "ITEM_PIPELINES={\"crawler.pipelines.FilesPipeline\": 1}"]


def sha1(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def media_project(project: Path) -> Path:
    (project / "spiders" / "media.py").write_text(SPIDER)
    return project


@pytest.fixture
def media_site():
    sites = []

    def make(pages, files):
        sites.append(MediaSite(pages, files))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


def crawl(run_master, project: Path, site: MediaSite, *args, timeout: float = 40.0):
    seeds = write_seeds(project, site.url + "/p/0")
    out = project / "out.jsonl"
    proc = run_master([seeds, "--spider", "media", "-o", out, "--workers", 2, *QUIET,
                       *map(str, args)], timeout=timeout)
    assert proc.returncode == 0, proc.describe()
    return {item["url"]: item for item in read_jsonl(out)}, proc


def chain(n: int, images) -> dict:
    """n pages in a line, page i referring to images(i)."""
    return {f"/p/{i}": (images(i), [], [f"/p/{i + 1}"] if i + 1 < n else []) for i in range(n)}


def test_an_image_on_20_pages_is_fetched_once_by_2_workers(media_project, media_site,
                                                           run_master, tmp_path):
    files = {"/img/shared.png": (200, image_bytes(0), "image/png")}
    files.update({f"/img/{i}.jpg": (200, image_bytes(i, kind="JPEG"), "image/jpeg")
                  for i in range(1, 21)})
    site = media_site(chain(20, lambda i: ["/img/shared.png", f"/img/{i + 1}.jpg"]), files)
    store = tmp_path / "images"
    items, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}")

    assert len(items) == 20
    assert site.count("/img/shared.png") == 1, site.started
    assert all(site.count(f"/img/{i}.jpg") == 1 for i in range(1, 21)), site.started
    shared_url = site.url + "/img/shared.png"
    for i in range(20):
        entries = items[f"{site.url}/p/{i}"]["images"]
        assert [e["url"] for e in entries] == [shared_url, f"{site.url}/img/{i + 1}.jpg"]
        for entry in entries:
            assert entry["path"] == f"full/{sha1(entry['url'])}.jpg"
            assert entry["status"] == "downloaded"
            assert entry["checksum"] == md5(store / entry["path"])
            assert Image.open(store / entry["path"]).format == "JPEG"
    assert sorted(p.name for p in (store / "full").iterdir()) == \
        sorted(f"{sha1(u)}.jpg" for u in {e["url"] for it in items.values() for e in it["images"]})
