"""crawler.link.wire: what a spider yields must be plain data; a mistake fails its page, never the
worker or the batch it would travel in."""
import pytest

from crawler import Response
from crawler.link import wire
from crawler.sitegen import Site
from procs import QUIET, read_jsonl, write_seeds

PAGE = Response("http://a.test/", 200, {"Content-Type": "text/html"}, b"<h1>Title</h1>")


@pytest.mark.parametrize("value, words", [
    ({"h1": PAGE.css("h1::text")}, ["item['h1'][0]", "Selector", ".get()"]),
    ({"h1": PAGE.css("h1::text")[0]}, ["item['h1']", "Selector", ".get()"]),
    ({1: "x"}, ["key 1", "strings"]),
    ({"z": 1j}, ["item['z']", "complex"]),
    ({"a": [{"b": object()}]}, ["item['a'][0]['b']", "object"]),
])
def test_what_is_not_plain_is_named(value, words):
    with pytest.raises(wire.NotPlainData) as info:
        wire.plain(value)
    for word in words:
        assert word in str(info.value)


def test_plain_data_passes_and_string_subclasses_become_str():
    smart = PAGE.xpath("//h1/text()")[0].root  # lxml's smart string, a str subclass
    value = {"t": smart, "n": [1, 2.5, None, True, b"x", ("a", {"k": "v"})]}
    out = wire.plain(value)
    assert out == {"t": "Title", "n": [1, 2.5, None, True, b"x", ("a", {"k": "v"})]}
    assert type(out["t"]) is str


SPIDER = '''
from crawler import Spider


class Forgetful(Spider):
    name = "forgetful"

    def parse(self, response):
        yield {"url": response.url}
        if "/book/" in response.url:
            yield {"h1": response.css("h1::text")}  # the classic missing .get()
        yield from response.follow_all(css="a")
'''


def test_a_missing_get_fails_those_pages_and_the_crawl_ends(serve, project, run_master):
    site = serve(Site(pages=10, links=1))
    (project / "spiders" / "forgetful.py").write_text(SPIDER)
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--spider", "forgetful",
                         "--workers", 2, "-o", out, *QUIET], timeout=30)
    assert master.returncode == 0, master.describe()
    assert "failed(spider_error): 10" in master.stdout, master.describe()
    urls = sorted(i["url"] for i in read_jsonl(out))
    assert urls == sorted(site.url.rstrip("/") + p for p in site.site.paths())


BROKEN = '''
import os
import sys
from crawler import Spider


class Broken(Spider):
    name = "broken"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        main = getattr(sys.modules["__main__"], "__spec__", None)
        if main is not None and main.name == "crawler.worker":
            os._exit(3)  # every worker dies as it sets the spider up; the master does not

    def parse(self, response):
        yield {"url": response.url}
'''


def test_the_master_stops_when_all_its_local_workers_died(serve, project, run_master):
    site = serve(Site(pages=5, links=1))
    (project / "spiders" / "broken.py").write_text(BROKEN)
    master = run_master([write_seeds(project, site.url), "--spider", "broken", "--workers", 2,
                         "-o", project / "out.jsonl", *QUIET], timeout=30)
    assert master.returncode == 1, master.describe()
    assert "all 2 local workers died (exit statuses 3, 3)" in master.stderr, master.describe()
    assert "crawl aborted: 0 pages done" in master.stdout, master.describe()
