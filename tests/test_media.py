"""FilesPipeline and ImagesPipeline end to end: a real master, real workers, a loopback site
serving real image bytes. Downloads are frontier tasks; each URL is fetched once."""
from __future__ import annotations

import hashlib
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


def test_files_are_stored_by_extension_and_failures_are_recorded(media_project, media_site,
                                                                 run_master, tmp_path):
    pdf = b"%PDF-1.4 a small document"
    files = {"/doc/a.pdf": (200, pdf, "application/pdf"),
             "/doc/empty.txt": (200, b"", "text/plain")}
    pages = {"/p/0": ([], ["/doc/a.pdf", "/doc/missing.pdf", "/doc/empty.txt"], [])}
    site = media_site(pages, files)
    store = tmp_path / "files"
    items, proc = crawl(run_master, media_project, site, *FILES, "-s", f"FILES_STORE={store}")

    entries = items[site.url + "/p/0"]["files"]
    ok, missing, empty = entries
    assert ok == {"url": site.url + "/doc/a.pdf", "path": f"full/{sha1(ok['url'])}.pdf",
                  "checksum": hashlib.md5(pdf).hexdigest(), "status": "downloaded"}
    assert (store / ok["path"]).read_bytes() == pdf
    assert missing == {"url": site.url + "/doc/missing.pdf", "path": None, "checksum": None,
                       "status": "failed", "reason": "http_404"}
    assert empty["status"] == "failed" and empty["reason"] == "empty_content"
    assert [p.name for p in (store / "full").iterdir()] == [f"{sha1(ok['url'])}.pdf"]
    assert not list(store.rglob("*.tmp"))  # written to a temporary name, then renamed


def test_thumbnails_and_the_minimum_size(media_project, media_site, run_master, tmp_path):
    files = {"/img/big.png": (200, image_bytes(1, (300, 200)), "image/png"),
             "/img/tiny.png": (200, image_bytes(2, (10, 10)), "image/png"),
             "/img/text.png": (200, b"not an image", "image/png")}
    site = media_site({"/p/0": (["/img/big.png", "/img/tiny.png", "/img/text.png"], [], [])},
                      files)
    store = tmp_path / "images"
    items, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}",
                     "-s", 'IMAGES_THUMBS={"small": [50, 50], "big": [150, 150]}',
                     "-s", "IMAGES_MIN_WIDTH=20", "-s", "IMAGES_MIN_HEIGHT=20")

    big, tiny, text = items[site.url + "/p/0"]["images"]
    assert big["status"] == "downloaded"
    digest = sha1(big["url"])
    full = Image.open(store / big["path"])
    assert (full.format, full.mode, full.size) == ("JPEG", "RGB", (300, 200))
    assert Image.open(store / f"thumbs/small/{digest}.jpg").size == (50, 33)
    assert Image.open(store / f"thumbs/big/{digest}.jpg").size == (150, 100)
    assert (tiny["status"], tiny["reason"]) == ("failed", "image_too_small")
    assert (text["status"], text["reason"]) == ("failed", "image_invalid")
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*.jpg")) == sorted(
        [f"full/{digest}.jpg", f"thumbs/small/{digest}.jpg", f"thumbs/big/{digest}.jpg"])


def test_a_fresh_stored_image_is_not_fetched_again(media_project, media_site, run_master,
                                                   tmp_path):
    files = {f"/img/{i}.png": (200, image_bytes(i), "image/png") for i in range(3)}
    site = media_site(chain(3, lambda i: [f"/img/{i}.png"]), files)
    store = tmp_path / "images"
    first, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}")
    (media_project / "out.jsonl").unlink()
    second, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}")

    assert [site.count(f"/img/{i}.png") for i in range(3)] == [1, 1, 1]
    for url, item in second.items():
        (entry,) = item["images"]
        assert entry["status"] == "uptodate"
        assert entry["checksum"] == first[url]["images"][0]["checksum"]
    # Expired (IMAGES_EXPIRES=0 days): fetched again.
    (media_project / "out.jsonl").unlink()
    third, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}",
                     "-s", "IMAGES_EXPIRES=0")
    assert [site.count(f"/img/{i}.png") for i in range(3)] == [2, 2, 2]
    assert {item["images"][0]["status"] for item in third.values()} == {"downloaded"}


def test_workers_write_to_an_fsspec_store(media_project, media_site, run_master, tmp_path):
    pytest.importorskip("fsspec")
    files = {f"/img/{i}.png": (200, image_bytes(i), "image/png") for i in range(4)}
    site = media_site(chain(4, lambda i: [f"/img/{i}.png", "/img/0.png"]), files)
    store = tmp_path / "bucket"
    items, _ = crawl(run_master, media_project, site, *IMAGES,
                     "-s", f"IMAGES_STORE=file://{store}/images", "-s", "MEDIA_WRITTEN_BY=workers")

    assert [site.count(f"/img/{i}.png") for i in range(4)] == [1, 1, 1, 1]
    for item in items.values():
        for entry in item["images"]:
            assert entry["status"] == "downloaded"
            assert entry["checksum"] == md5(store / "images" / entry["path"])
    assert len(list((store / "images" / "full").iterdir())) == 4


def test_without_pillow_the_master_says_how_to_install_it(media_project, media_site,
                                                          run_master, tmp_path):
    # The project folder comes first on the master's sys.path: a PIL there that cannot be
    # imported stands for a missing Pillow.
    (media_project / "PIL").mkdir()
    (media_project / "PIL" / "__init__.py").write_text("raise ImportError('no Pillow')\n")
    site = media_site({"/p/0": (["/img/0.png"], [], [])}, {})
    seeds = write_seeds(media_project, site.url + "/p/0")
    proc = run_master([seeds, "--spider", "media", *IMAGES, "-s",
                       f"IMAGES_STORE={tmp_path / 'images'}", *QUIET])
    assert proc.returncode == 2, proc.describe()
    assert "ImagesPipeline needs Pillow: pip install 'crawler[images]'" in proc.stderr
    assert site.started == []  # nothing started


def test_a_store_is_required(media_project, media_site, run_master):
    site = media_site({"/p/0": ([], [], [])}, {})
    seeds = write_seeds(media_project, site.url + "/p/0")
    proc = run_master([seeds, "--spider", "media", *FILES, *QUIET])
    assert proc.returncode == 2, proc.describe()
    assert "FilesPipeline needs FILES_STORE" in proc.stderr


@pytest.mark.parametrize("allow", [False, True])
def test_robots_txt_and_redirects_apply_to_media(allow, media_project, media_site, run_master,
                                                 tmp_path):
    files = {"/robots.txt": (200, b"User-agent: *\nDisallow: /img/private/\n", "text/plain"),
             "/img/0.png": (200, image_bytes(0), "image/png"),
             "/img/private/1.png": (200, image_bytes(1), "image/png")}
    site = media_site({"/p/0": (["/img/private/1.png", "/img/moved.png"], [], [])}, files)
    site.redirect("/img/moved.png", "/img/0.png")
    store = tmp_path / "images"
    items, _ = crawl(run_master, media_project, site, *IMAGES, "-s", f"IMAGES_STORE={store}",
                     "-s", f"MEDIA_ALLOW_REDIRECTS={allow}", "-s", "ROBOTSTXT_OBEY=true")

    private, moved = items[site.url + "/p/0"]["images"]
    assert (private["status"], private["reason"]) == ("failed", "robots")
    assert site.count("/img/private/1.png") == 0
    # allowed: stored under the URL the item gave; else the redirect is the download's failure
    expected = {True: ("downloaded", None, f"full/{sha1(site.url + '/img/moved.png')}.jpg", 1),
                False: ("failed", "http_301", None, 0)}[allow]
    assert (moved["status"], moved.get("reason"), moved.get("path"),
            site.count("/img/0.png")) == expected, moved
    assert moved.get("path") is None or (store / moved["path"]).exists()


def test_a_recrawl_asks_for_no_image_again(media_project, media_site, run_master, tmp_path):
    files = {f"/img/{i}.png": (200, image_bytes(i), "image/png") for i in range(3)}
    site = media_site(chain(3, lambda i: [f"/img/{i}.png"]), files)
    common = [*IMAGES, "-s", f"IMAGES_STORE={tmp_path / 'images'}", "--jobdir", tmp_path / "job"]
    first, _ = crawl(run_master, media_project, site, *common)
    assert {item["images"][0]["status"] for item in first.values()} == {"downloaded"}
    (media_project / "out.jsonl").unlink()
    # The site sends no validators, so every page comes back in full: items again, and
    # their images found in the store.
    second, _ = crawl(run_master, media_project, site, *common, "--recrawl")
    assert [site.count(f"/img/{i}.png") for i in range(3)] == [1, 1, 1], site.started
    assert {item["images"][0]["status"] for item in second.values()} == {"uptodate"}
