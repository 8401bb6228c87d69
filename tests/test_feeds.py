"""crawler.feeds: formats, FEEDS and -o/-O parsing, checks, and cutting back a resumed feed."""
import csv
import json
import math
import re
import signal
import xml.etree.ElementTree as ET

import pytest

from crawler import UsageError
from crawler.config import defaults
from crawler.feeds import STDOUT, Feed, FeedSpec, check_new, from_cli, from_settings, identity


def settings(**values):
    return dict(defaults(), **values)


def cli(*given, overwrite=False, **values):
    return from_cli([(g, overwrite) for g in given], settings(**values))


def write(path, items, **options):
    spec = FeedSpec(str(path), **options)
    feed = Feed(spec, str(path))
    for item in items:
        feed.write(item)
    feed.close()
    return feed


# -- choosing feeds -----------------------------------------------------------------------

@pytest.mark.parametrize("given, uri, fmt", [
    ("out.jsonl", "out.jsonl", "jsonlines"), ("OUT.JL", "OUT.JL", "jsonlines"),
    ("d.d/out.csv", "d.d/out.csv", "csv"), ("out.json", "out.json", "json"),
    ("out.xml", "out.xml", "xml"), ("items.txt:jsonlines", "items.txt", "jsonlines"),
    ("out.json:xml", "out.json", "xml"), ("-:json", STDOUT, "json"), ("-", STDOUT, "jsonlines"),
    ("stdout:", STDOUT, "jsonlines"), ("stdout::csv", STDOUT, "csv"),
    ("file:///tmp/x.csv", "/tmp/x.csv", "csv")])
def test_cli_output_format_by_extension_or_suffix(given, uri, fmt):
    [spec] = cli(given)
    assert (spec.uri, spec.format, spec.overwrite) == (uri, fmt, False)


@pytest.mark.parametrize("given, shown", [("out", "(no extension)"), ("out.json.gz", ".gz"),
                                          ("out.json:yaml", "'yaml'"), ("s3://b/x.json", "s3")])
def test_cli_output_unknown_format_or_storage(given, shown):
    with pytest.raises(UsageError) as info:
        cli(given)
    assert shown in str(info.value)


def test_feeds_setting_with_fallbacks():
    specs = from_settings(settings(
        FEEDS={"a.jsonl": {"format": "jsonlines"},
               "b.csv": {"format": "csv", "fields": ["t", "u"], "encoding": "latin-1",
                         "overwrite": True}},
        FEED_EXPORT_FIELDS="u", FEED_EXPORT_ENCODING="utf-16"))
    assert specs == [FeedSpec("a.jsonl", "jsonlines", {"u": "u"}, "utf-16", False),
                     FeedSpec("b.csv", "csv", {"t": "t", "u": "u"}, "latin-1", True)]


@pytest.mark.parametrize("feeds, message", [
    ({"a.out": {"format": "yaml"}}, "unknown format 'yaml'"),
    ({"a.out": {}}, "unknown format"),
    ({"a.json": {"format": "json", "indent": 4}}, "unsupported options"),
    ({"a.json": {"format": "json", "encoding": "klingon"}}, "unknown encoding"),
    ({"a.json": {"format": "json", "fields": 3}}, "fields must be"),
    ({"a.json": {"format": "json", "overwrite": "yes"}}, "overwrite must be"),
    ({"a.json": "json"}, "expected a dict")])
def test_feeds_setting_errors_name_the_feed(feeds, message):
    with pytest.raises(UsageError, match=message) as info:
        from_settings(settings(FEEDS=feeds))
    assert list(feeds)[0] in str(info.value)


def test_uri_parameters():
    spec = FeedSpec("out/%(name)s-%(time)s.jsonl", "jsonlines")
    assert spec.render({"name": "books", "time": "T"}) == "out/books-T.jsonl"
    with pytest.raises(UsageError, match=r"%\(site\)s"):
        FeedSpec("%(site)s.jsonl", "jsonlines").render({"name": "books"})


def test_uri_params_hold_spider_attributes():
    from crawler.feeds import uri_params

    class Spider:
        name = "books"

        def __init__(self):
            self.category = "poetry"

    params = uri_params(Spider())
    assert (params["name"], params["category"]) == ("books", "poetry")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d", params["time"])


def test_identity_ignores_order_and_names_format(tmp_path):
    a, b = FeedSpec("a.csv", "csv"), FeedSpec("b.json", "xml")
    assert identity([a, b]) == identity([b, a]) != identity([a, FeedSpec("b.json", "json")])


@pytest.mark.parametrize("name, fmt", [("items.csv", "csv"), ("items.json", "json"),
                                       ("items.xml", "xml")])
def test_existing_file_refused_unless_appendable_or_overwriting(tmp_path, name, fmt):
    path = tmp_path / name
    check_new(FeedSpec(str(path), fmt), str(path))  # not there yet: fine
    path.write_text("old")
    with pytest.raises(UsageError, match="-O"):
        check_new(FeedSpec(str(path), fmt), str(path))
    check_new(FeedSpec(str(path), fmt, overwrite=True), str(path))
    check_new(FeedSpec(str(path), "jsonlines"), str(path))


# -- formats --------------------------------------------------------------------------

def test_jsonlines_appends_and_overwrites(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"n": 0}\n', encoding="utf-8")
    assert write(path, [{"n": 1, "title": "café"}, {"n": 2}], format="jsonlines").count == 2
    assert path.read_text(encoding="utf-8") == '{"n": 0}\n{"n": 1, "title": "café"}\n{"n": 2}\n'
    write(path, [{"n": 3}], format="jsonlines", overwrite=True)
    assert path.read_text() == '{"n": 3}\n'


def test_appending_to_a_file_cut_mid_line_starts_a_new_line(tmp_path, caplog):
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"n": 0}\n{"n": 1, "tit')  # a crawl killed mid-write
    write(path, [{"n": 2}], format="jsonlines")
    assert path.read_text().splitlines() == ['{"n": 0}', '{"n": 1, "tit', '{"n": 2}']
    assert "does not end with a line break" in caplog.text


def test_json_values_json_cannot_hold(tmp_path):
    path = tmp_path / "items.json"
    write(path, [{"b": b"x", "s": {1}, "nan": math.nan, "deep": [{"inf": -math.inf}, 1.5]}],
          format="json")
    # Strict parsing: NaN/Infinity would be refused.
    text = path.read_text()
    assert json.loads(text, parse_constant=pytest.fail) == [
        {"b": "b'x'", "s": "{1}", "nan": None, "deep": [{"inf": None}, 1.5]}]


@pytest.mark.parametrize("fmt, empty", [("json", []), ("jsonlines", None), ("csv", None)])
def test_empty_feeds(tmp_path, fmt, empty):
    path = tmp_path / "items"
    write(path, [], format=fmt)
    assert (json.loads(path.read_text()) if empty is not None else path.read_text()) == \
        (empty if empty is not None else "")


def test_csv_header_from_first_item_or_fields(tmp_path):
    path = tmp_path / "items.csv"
    write(path, [{"title": "A, with comma", "price": 3}, {"price": 4, "extra": "dropped"},
                 {"title": "C", "price": None}], format="csv")
    with open(path, newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [["title", "price"], ["A, with comma", "3"], ["", "4"],
                                       ["C", ""]]
    write(path, [{"a": 1, "b": 2}], format="csv", fields={"b": "B", "z": "Z"}, overwrite=True)
    assert path.read_bytes() == b"B,Z\r\n2,\r\n"


def test_fields_select_and_rename_in_json(tmp_path):
    path = tmp_path / "items.jsonl"
    write(path, [{"a": 1, "b": 2, "c": 3}, {"c": 4}], format="jsonlines",
          fields={"c": "C", "a": "a"})
    assert path.read_text() == '{"C": 3, "a": 1}\n{"C": 4}\n'


def test_xml_document(tmp_path):
    path = tmp_path / "items.xml"
    write(path, [{"title": "a < b & \x01c", "tags": ["x", "y"], "price": {"eur": 3},
                  "bad name": None, "1st": 1}, {"title": "ü"}], format="xml")
    root = ET.parse(path).getroot()
    assert root.tag == "items" and len(root) == 2
    first = root[0]
    assert first.findtext("title") == "a < b & c"
    assert [v.text for v in first.find("tags")] == ["x", "y"]
    assert first.findtext("price/eur") == "3"
    assert first.find("bad_name").text is None and first.findtext("_1st") == "1"
    assert root[1].findtext("title") == "ü"


def test_encoding(tmp_path):
    path = tmp_path / "items.xml"
    write(path, [{"t": "€ é"}], format="xml", encoding="latin-1")
    assert ET.parse(path).getroot()[0].findtext("t") == "€ é"  # € as a character reference
    path = tmp_path / "items.jsonl"
    write(path, [{"t": "€ é"}], format="jsonlines", encoding="latin-1")
    assert path.read_bytes() == b'{"t": "\\u20ac \\u00e9"}\n'
    write(path, [{"t": "é"}], format="jsonlines", encoding="utf-16", overwrite=True)
    assert path.read_text(encoding="utf-16") == '{"t": "é"}\n'


# -- resuming: cut back to the last whole item, continue, close again ----------------------

@pytest.mark.parametrize("fmt, read", [
    ("json", lambda p: json.loads(p.read_text())),
    ("jsonlines", lambda p: [json.loads(x) for x in p.read_text().splitlines()]),
    ("xml", lambda p: [{"n": int(i.findtext("n"))} for i in ET.parse(p).getroot()]),
    ("csv", lambda p: [{"n": int(r["n"])} for r in csv.DictReader(p.open(newline=""))])])
@pytest.mark.parametrize("closed", [True, False])
def test_resumed_feed_holds_each_item_once_and_is_valid(tmp_path, fmt, read, closed):
    path = tmp_path / f"items.{fmt}"
    spec = FeedSpec(str(path), fmt)
    feed = Feed(spec, str(path))
    feed.write({"n": 1})
    feed.write({"n": 2})
    good = feed.flush()  # what the journal records
    feed.write({"n": 3})  # written but not recorded: the crash comes first
    feed.file.flush()
    if closed:  # an interrupted run closes its feeds (a json array gets its "]")
        feed.close()
    else:  # a killed one leaves a torn last item
        feed.file.write('{"n": 4, "tor')
        feed.file.flush()
    resumed = Feed(spec, str(path), good)
    assert resumed.count == 2
    resumed.write({"n": 3})
    resumed.close()
    assert read(path) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_resume_refuses_a_file_shorter_than_recorded(tmp_path):
    from crawler import CrawlerError
    path = tmp_path / "items.json"
    path.write_text("[")
    with pytest.raises(CrawlerError, match="shorter than the journal"):
        Feed(FeedSpec(str(path), "json"), str(path), (10, 1))


# -- real crawls -----------------------------------------------------------------------------

from procs import QUIET, count_lines, read_jsonl, site_urls, wait_for, write_seeds  # noqa: E402
from test_e2e import assert_no_process_left, assert_one_item_per_page  # noqa: E402

from crawler.sitegen import Site  # noqa: E402

FAST = ["-s", "LEASE_TIMEOUT=2", "-s", "CALL_TIMEOUT=1.5", "-s", "RECONNECT_MAX_DELAY=1", *QUIET]


def read_feeds(project, xml="out.xml"):
    """Every feed of a finished crawl, parsed (json and xml as whole documents)."""
    with open(project / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {"jsonl": read_jsonl(project / "out.jsonl"),
            "json": json.loads((project / "out.json").read_text(encoding="utf-8")),
            "csv": rows,
            "xml": [{"url": i.findtext("url")} for i in ET.parse(project / xml).getroot()]}


def test_feeds_setting_writes_every_format(site, project, run_master):
    (project / "settings.py").write_text(
        "FEEDS = {'out.jsonl': {'format': 'jsonlines'}, 'out.json': {'format': 'json'},\n"
        "         'out.csv': {'format': 'csv', 'fields': ['url', 'title']},\n"
        "         'out.xml': {'format': 'xml'}}\n")
    master = run_master([write_seeds(project, site.url), "--workers", 2, *QUIET])
    assert master.returncode == 0, master.describe()
    feeds = read_feeds(project)
    for name, items in feeds.items():
        assert_one_item_per_page(items, site)
    assert list(feeds["csv"][0]) == ["url", "title"]
    assert not (project / "generic.jsonl").exists()


def test_uri_parameters_and_cli_feeds_replace_feeds_setting(site, project, run_master):
    (project / "settings.py").write_text("FEEDS = {'never.json': {'format': 'json'}}\n")
    master = run_master([write_seeds(project, site.url), "--workers", 2, *QUIET,
                         "-o", "out/%(name)s-%(time)s.data:xml", "-O", "plain.jsonl"])
    assert master.returncode == 0, master.describe()
    [xml] = list((project / "out").iterdir())
    assert re.fullmatch(r"generic-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.data", xml.name), xml.name
    assert len(ET.parse(xml).getroot()) == len(site_urls(site))
    assert_one_item_per_page(read_jsonl(project / "plain.jsonl"), site)
    assert not (project / "never.json").exists()


def test_stdout_feed(site, project, run_master):
    master = run_master([write_seeds(project, site.url), "--workers", 2, *QUIET, "-o", "-"])
    assert master.returncode == 0, master.describe()
    items = [json.loads(line) for line in master.stdout.splitlines() if line.startswith("{")]
    assert_one_item_per_page(items, site)


def test_append_and_overwrite(site, project, run_master):
    seeds = write_seeds(project, site.url)
    (project / "out.jsonl").write_text('{"url": "old"}\n')
    (project / "out.csv").write_text("keep\n")
    refused = run_master([seeds, "--workers", 2, *QUIET, "-o", "out.jsonl", "-o", "out.csv"])
    assert refused.returncode == 2 and "out.csv exists" in refused.stderr, refused.describe()
    assert "master listening" not in refused.stdout and site.log == []
    master = run_master([seeds, "--workers", 2, *QUIET, "-o", "out.jsonl", "-O", "out.csv"])
    assert master.returncode == 0, master.describe()
    items = read_jsonl(project / "out.jsonl")
    assert items[0] == {"url": "old"}
    assert_one_item_per_page(items[1:], site)
    with open(project / "out.csv", newline="") as f:
        assert_one_item_per_page(list(csv.DictReader(f)), site)


@pytest.mark.parametrize("feeds, message", [
    ({"a.out": {"format": "yaml"}}, "unknown format 'yaml'"),
    ({"a.json": {"format": "json", "indent": 2}}, "unsupported options")])
def test_bad_feeds_entry_stops_the_master(site, project, run_master, feeds, message):
    (project / "settings.py").write_text(f"FEEDS = {feeds!r}\n")
    master = run_master([write_seeds(project, site.url), "--workers", 2, *QUIET])
    assert master.returncode == 2, master.describe()
    assert message in master.stderr and list(feeds)[0] in master.stderr, master.describe()
    assert site.log == [] and not (project / list(feeds)[0]).exists()


def test_every_feed_exactly_once_after_master_sigkill(serve, project, procs, tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.02)
    args = [write_seeds(project, site.url), "--workers", 2, "--jobdir", tmp_path / "job",
            *FAST, "-o", "out.jsonl", "-O", "out.json", "-o", "out.csv", "-o", "out-%(time)s.xml"]
    first = procs.master(args, project)
    wait_for(lambda: count_lines(project / "out.jsonl") >= 20, 20, "20 items written",
             describe=first.describe)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    assert count_lines(project / "out.jsonl") < len(site_urls(site)), "over before the kill"
    assert_no_process_left(first)
    # The killed run left the JSON array and the XML document open.
    with pytest.raises(json.JSONDecodeError):
        json.loads((project / "out.json").read_text())

    [xml] = project.glob("out-*.xml")
    again = procs.master(args, project, name="again")
    assert again.wait(60) == 0, again.describe()
    assert_no_process_left(again)
    assert list(project.glob("out-*.xml")) == [xml], "the resumed feed's path changed"
    feeds = read_feeds(project, xml.name)
    for name, items in feeds.items():
        assert_one_item_per_page(items, site)
    stats = json.loads((tmp_path / "job" / "stats.json").read_text())
    assert stats["items"] == len(site_urls(site)), stats
