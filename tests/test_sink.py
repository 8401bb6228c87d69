"""crawler.sink: feed formats, output checks, pipelines and the Sink thread."""
import csv
import json
import sys
import types

import pytest

from crawler import DropItem, UsageError
from crawler.sink import FeedWriter, Sink, check_output, feed_format, load_pipelines


def write_items(path, items, **kwargs):
    writer = FeedWriter(str(path), **kwargs)
    for item in items:
        writer.write(item)
    writer.close()
    return writer


# -- formats ---------------------------------------------------------------------

@pytest.mark.parametrize("path, fmt", [("out.jsonl", "jsonl"), ("out.jl", "jsonl"),
                                       ("OUT.JSONL", "jsonl"), ("dir.d/out.csv", "csv"),
                                       ("out.json", "json")])
def test_feed_format_by_extension(path, fmt):
    assert feed_format(path) == fmt


@pytest.mark.parametrize("path, shown", [("out.xml", ".xml"), ("out", "(none)"),
                                         ("out.json.gz", ".gz")])
def test_feed_format_unknown_extension(path, shown):
    with pytest.raises(UsageError) as info:
        feed_format(path)
    assert path in str(info.value) and shown in str(info.value)


def test_jsonl_appends_to_existing_file(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"n": 0}\n', encoding="utf-8")
    writer = write_items(path, [{"n": 1, "title": "café"}, {"n": 2}])
    assert writer.count == 2
    assert path.read_text(encoding="utf-8") == '{"n": 0}\n{"n": 1, "title": "café"}\n{"n": 2}\n'


def test_jsonl_overwrite_truncates(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"old": true}\n')
    write_items(path, [{"n": 1}], overwrite=True)
    assert path.read_text() == '{"n": 1}\n'


def test_jsonl_non_json_values_written_as_strings(tmp_path):
    path = tmp_path / "items.jsonl"
    write_items(path, [{"b": b"x", "s": {1}}])
    assert json.loads(path.read_text()) == {"b": "b'x'", "s": "{1}"}


def test_csv_header_from_first_item(tmp_path):
    path = tmp_path / "items.csv"
    write_items(path, [{"title": "A, with comma", "price": 3}, {"price": 4, "extra": "dropped"},
                       {"title": "C"}])
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [["title", "price"], ["A, with comma", "3"], ["", "4"], ["C", ""]]


def test_json_is_valid_array(tmp_path):
    path = tmp_path / "items.json"
    items = [{"n": 1, "title": "ü"}, {"n": 2, "tags": ["a", "b"]}]
    writer = write_items(path, items)
    assert writer.count == 2
    assert json.loads(path.read_text(encoding="utf-8")) == items


def test_json_empty_is_valid_array(tmp_path):
    path = tmp_path / "items.json"
    write_items(path, [])
    assert json.loads(path.read_text()) == []


def test_csv_empty_file(tmp_path):
    path = tmp_path / "items.csv"
    write_items(path, [])
    assert path.read_text() == ""


# -- check_output --------------------------------------------------------------------

@pytest.mark.parametrize("name", ["items.csv", "items.json"])
def test_check_output_refuses_existing_csv_json(tmp_path, name):
    path = tmp_path / name
    path.write_text("old")
    with pytest.raises(UsageError, match="--overwrite"):
        check_output(str(path), overwrite=False)
    check_output(str(path), overwrite=True)


@pytest.mark.parametrize("name", ["items.jsonl", "items.jl"])
def test_check_output_accepts_existing_jsonl(tmp_path, name):
    path = tmp_path / name
    path.write_text("{}\n")
    check_output(str(path), overwrite=False)


def test_check_output_accepts_new_file(tmp_path):
    check_output(str(tmp_path / "new.csv"), overwrite=False)
    check_output(str(tmp_path / "new.json"), overwrite=False)
    assert list(tmp_path.iterdir()) == []


def test_check_output_existing_file_with_unknown_extension(tmp_path):
    path = tmp_path / "items.txt"
    path.write_text("old")
    with pytest.raises(UsageError, match="unknown format"):
        check_output(str(path), overwrite=False)


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


def run_sink(path, pipelines, items, spider="spider-object"):
    sink = Sink(FeedWriter(str(path)), pipelines, spider)
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
    assert sink.dropped == 1


def test_sink_without_pipelines_writes_everything(tmp_path):
    path = tmp_path / "out.json"
    items = [{"n": i} for i in range(5)]
    sink = run_sink(path, [], items)
    assert json.loads(path.read_text()) == items
    assert sink.count == 5 and sink.dropped == 0


# -- load_pipelines ---------------------------------------------------------------------------

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
