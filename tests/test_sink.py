"""crawler.sink: pipelines and the Sink thread writing every feed."""
import json
import time
import sys
import types

import pytest

from crawler import DropItem, UsageError
from crawler.feeds import Feed, from_cli
from crawler.config import defaults
from crawler import signals
from crawler.components import Crawler, load
from crawler.sink import Sink


# -- pipelines ---------------------------------------------------------------------------

class Upper:
    def __init__(self):
        self.events = []

    def open_spider(self, spider):
        self.events.append(("open", spider))

    def close_spider(self, spider):
        self.events.append(("close", spider))

    def process_item(self, item, spider):
        return dict(item, title=item["title"].upper())


class DropOdd:
    def __init__(self):
        self.seen = []

    def process_item(self, item, spider):
        self.seen.append(item["n"])
        if item["n"] % 2:
            raise DropItem(f"odd {item['n']}")
        return item


class Broken:
    def process_item(self, item, spider):
        if item["n"] == 4:
            raise KeyError("oops")
        return item


def feed(path):
    return Feed(from_cli([(str(path), False)], defaults())[0], str(path))


def run_sink(path, pipelines, items, spider="spider-object", more=()):
    sink = Sink([feed(path), *map(feed, more)], pipelines, spider)
    sink.start()
    sink.put_many(list(enumerate(items[:3], 1)))
    sink.put_many(list(enumerate(items[3:], 4)))
    sink.close()
    return sink


def test_sink_runs_pipelines_in_order_and_drops(tmp_path):
    path = tmp_path / "out.jsonl"
    upper, drop = Upper(), DropOdd()
    items = [{"n": i, "title": f"t{i}"} for i in range(6)]
    sink = run_sink(path, [upper, drop], items)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"n": 0, "title": "T0"}, {"n": 2, "title": "T2"}, {"n": 4, "title": "T4"}]
    assert sink.count == 3
    assert sink.dropped == 3
    assert drop.seen == [0, 1, 2, 3, 4, 5]
    assert upper.events == [("open", "spider-object"), ("close", "spider-object")]


def test_dropped_item_skips_later_pipelines(tmp_path):
    first, second = DropOdd(), DropOdd()
    run_sink(tmp_path / "out.jsonl", [first, second], [{"n": i} for i in range(4)])
    assert first.seen == [0, 1, 2, 3]
    assert second.seen == [0, 2]


def test_pipeline_error_drops_only_that_item(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = run_sink(path, [Broken()], [{"n": i} for i in range(6)])
    assert [json.loads(x)["n"] for x in path.read_text().splitlines()] == [0, 1, 2, 3, 5]
    assert sink.dropped == 0  # not dropped on purpose: an error of that item
    assert sink.item_errors == [("", "KeyError('oops')")]


def test_sink_without_pipelines_writes_everything(tmp_path):
    path = tmp_path / "out.json"
    items = [{"n": i} for i in range(5)]
    sink = run_sink(path, [], items)
    assert json.loads(path.read_text()) == items
    assert sink.count == 5 and sink.dropped == 0


def test_sink_writes_every_item_to_every_feed(tmp_path):
    paths = [tmp_path / "a.jsonl", tmp_path / "b.json", tmp_path / "c.csv", tmp_path / "d.xml"]
    sink = run_sink(paths[0], [DropOdd()], [{"n": i} for i in range(6)], more=paths[1:])
    assert [json.loads(x)["n"] for x in paths[0].read_text().splitlines()] == [0, 2, 4]
    assert json.loads(paths[1].read_text()) == [{"n": 0}, {"n": 2}, {"n": 4}]
    assert paths[2].read_bytes() == b"n\r\n0\r\n2\r\n4\r\n"
    assert paths[3].read_text().count("<item>") == 3
    assert sink.count == 3


def test_sink_reports_progress_of_every_file_feed(tmp_path):
    reports = []
    paths = [tmp_path / "a.jsonl", tmp_path / "b.json"]
    sink = Sink([feed(p) for p in paths], [], None, lambda seq, progress: reports.append(
        (seq, progress)))
    sink.start()
    sink.put_many([(7, {"n": 1}), (8, {"n": 2})])
    deadline = time.monotonic() + 5  # caught up, the sink flushes and reports
    while not reports and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.close()
    assert reports == [(8, {str(p): (str(p), len(p.read_bytes()) - (3 if p.suffix == ".json"
                                                                     else 0), 2)
                            for p in paths})]


# -- loading pipelines ------------------------------------------------------------------------
def load_pipelines(spec, spider):
    return load("ITEM_PIPELINES", spec, Crawler({}, signals.SignalManager(), spider))


@pytest.fixture
def pipes_module(monkeypatch):
    module = types.ModuleType("tmp_pipes_xyz")
    module.Upper, module.DropOdd = Upper, DropOdd
    monkeypatch.setitem(sys.modules, "tmp_pipes_xyz", module)
    return module


def test_load_pipelines_in_order(pipes_module):
    pipelines = load_pipelines({"tmp_pipes_xyz.Upper": 500, "tmp_pipes_xyz.DropOdd": 100}, None)
    assert [type(p) for p in pipelines] == [DropOdd, Upper]


def test_load_pipelines_empty():
    assert load_pipelines({}, None) == []


@pytest.mark.parametrize("path", ["no_such_module_xyz.Pipe", "tmp_pipes_xyz.Missing",
                                  "NoDots", ".Leading"])
def test_load_pipelines_bad_path(pipes_module, path):
    with pytest.raises(UsageError) as info:
        load_pipelines({path: 1}, None)
    assert "ITEM_PIPELINES" in str(info.value) and path in str(info.value)


class AsyncUpper:
    """A pipeline written with async def, as Scrapy allows."""

    async def open_spider(self, spider):
        self.opened = True

    async def process_item(self, item, spider):
        if item.get("n", 0) % 2:
            raise DropItem("odd")
        return {k: v.upper() if isinstance(v, str) else v for k, v in item.items()}


class FromCrawler:
    def __init__(self, tag):
        self.tag = tag

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings["TAG"])

    def process_item(self, item, spider):
        return dict(item, tag=self.tag)


def test_async_pipelines_and_item_signals():
    manager, scraped, dropped = signals.SignalManager(), [], []
    manager.connect(lambda item: scraped.append(item), signals.item_scraped)
    manager.connect(lambda item, exception: dropped.append((item, str(exception))),
                    signals.item_dropped)
    pipeline = AsyncUpper()
    sink = Sink([], [pipeline], signal_manager=manager)
    sink.start()
    sink.put_many([(1, {"n": 2, "t": "a"}), (2, {"n": 3, "t": "b"})])
    sink.close()
    assert pipeline.opened
    assert scraped == [{"n": 2, "t": "A"}]
    assert dropped == [({"n": 3, "t": "b"}, "odd")]
    assert sink.dropped == 1


def test_pipelines_are_made_with_from_crawler():
    crawler = Crawler({"TAG": "x"}, signals.SignalManager())
    [pipe] = load("ITEM_PIPELINES", {f"{__name__}.FromCrawler": 1}, crawler)
    assert pipe.process_item({}, None) == {"tag": "x"}
