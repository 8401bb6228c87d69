"""The parts of the media pipelines that need no cluster: stores, the sink holding an item
back, and paths named as Scrapy names them."""
from __future__ import annotations

import hashlib
import threading

import pytest

from crawler.feeds import Feed, FeedSpec
from crawler.http.request import Request
from crawler.pipelines import FilesPipeline, ImagesPipeline
from crawler.pipelines.store import open_store
from crawler.sink import Held, Sink


@pytest.mark.parametrize("kind", ["folder", "file://", "memory://"])
def test_a_store_writes_atomically_and_stats(kind, tmp_path):
    if kind != "folder":
        pytest.importorskip("fsspec")
    uri = {"folder": str(tmp_path / "s"), "file://": f"file://{tmp_path}/s",
           "memory://": f"memory://{tmp_path.name}/s"}[kind]
    store = open_store(uri)
    assert store.stat("full/a.jpg") is None
    store.persist("full/a.jpg", b"one")
    store.persist("full/a.jpg", b"two")  # replaced whole
    age, checksum = store.stat("full/a.jpg")
    assert 0 <= age < 60 and checksum == hashlib.md5(b"two").hexdigest()
    if kind == "memory://":
        import fsspec
        names = fsspec.filesystem("memory").find(f"/{tmp_path.name}/s")
    else:
        names = [str(p) for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert [n.rsplit("/", 2)[-2:] for n in names] == [["full", "a.jpg"]]  # no temporary left


class HoldFirst:
    """Holds the first item it sees until release() is called."""

    def __init__(self) -> None:
        self.held: Held | None = None

    def process_item(self, item, spider):
        if item["n"] == 1:
            self.held = Held(abandon=lambda: dict(item, abandoned=True))
            return self.held
        return item


class Tag:
    def process_item(self, item, spider):
        return dict(item, tagged=True)


def make_sink(tmp_path, pipelines, on_written=None):
    path = tmp_path / "out.jsonl"
    feed = Feed(FeedSpec(str(path), "jsonlines"), str(path))
    return Sink([feed], pipelines, on_written=on_written), path


def test_a_held_item_keeps_its_place_in_the_feed(tmp_path):
    import json
    holder, marks = HoldFirst(), []
    written = threading.Event()
    sink, path = make_sink(tmp_path, [holder, Tag()],
                           lambda seq, progress: (marks.append(seq), written.set()))
    sink.start()
    sink.put_many([(1, {"n": 1}), (2, {"n": 2})])
    for _ in range(100):  # bounded: the sink thread has seen both items
        if holder.held is not None and sink.unfinished() == 2:
            break
        threading.Event().wait(0.01)
    assert sink.unfinished() == 2 and marks == []  # item 2 waits behind item 1
    holder.held.release(lambda: {"n": 1, "media": "done"})
    assert written.wait(5)
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"n": 1, "media": "done", "tagged": True}, {"n": 2, "tagged": True}]
    assert marks[-1] == 2 and sink.unfinished() == 0


@pytest.mark.parametrize("resumable", [False, True])
def test_a_held_item_is_abandoned_at_the_end_unless_resumed_later(resumable, tmp_path):
    import json
    holder = HoldFirst()
    sink, path = make_sink(tmp_path, [holder])
    sink.start()
    sink.put_many([(1, {"n": 1}), (2, {"n": 2})])
    sink.close(resumable=resumable)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    # Resumable: neither is written (item 2 waits behind 1); both are in the journal.
    assert lines == ([] if resumable else [{"n": 1, "abandoned": True}, {"n": 2}])


@pytest.mark.parametrize("url", ["http://example.com/a/b.png", "http://example.com/x?y=1",
                                 "http://example.com/doc.PDF", "http://example.com/f.tar.gz",
                                 "http://example.com/dir.d/file", "http://example.com/é.jpg",
                                 "http://example.com/a%20b.html"])
def test_paths_are_scrapys(url, tmp_path):
    pytest.importorskip("PIL")
    scrapy_files = pytest.importorskip("scrapy.pipelines.files")
    scrapy_images = pytest.importorskip("scrapy.pipelines.images")
    from scrapy import Request as ScrapyRequest
    settings = {"FILES_STORE": str(tmp_path), "IMAGES_STORE": str(tmp_path),
                "IMAGES_THUMBS": {"small": (10, 10)}}
    ours_f, ours_i = FilesPipeline(str(tmp_path), settings), ImagesPipeline(str(tmp_path), settings)
    # Their path methods use only the request: instances without a crawler will do.
    theirs_f = object.__new__(scrapy_files.FilesPipeline)
    theirs_i = object.__new__(scrapy_images.ImagesPipeline)
    request, theirs = Request(url), ScrapyRequest(url)
    assert ours_f.file_path(request) == theirs_f.file_path(theirs)
    assert ours_i.file_path(request) == theirs_i.file_path(theirs)
    assert ours_i.thumb_path(request, "small") == theirs_i.thumb_path(theirs, "small")
