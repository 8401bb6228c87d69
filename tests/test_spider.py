"""crawler.spider.base: finding spiders by name, source_hash, and the generic spider."""
import importlib
import sys
import textwrap

import pytest

from crawler import GenericSpider, Request, Response, UsageError
from crawler.spider.base import find_spiders, load_spider_class, source_hash

PKG = "tmpspiders_xyz"

SPIDER_ALPHA = """
from crawler import Spider

class AlphaSpider(Spider):
    name = "alpha"

class Unnamed(Spider):
    pass
"""

SPIDER_BETA = """
from crawler import Spider
from tmpspiders_xyz.alpha import AlphaSpider  # imported, not defined here

class BetaSpider(Spider):
    name = "beta"
"""


def _forget_package():
    for mod in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[mod]


@pytest.fixture
def make_package(tmp_path, monkeypatch):
    """Create tmpspiders_xyz with the given modules ({name: source}) and make it importable."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "src"
    pkg = root / PKG
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    _forget_package()
    importlib.invalidate_caches()

    def make(modules):
        for name, source in modules.items():
            (pkg / f"{name}.py").write_text(textwrap.dedent(source))
        return pkg

    yield make
    _forget_package()
    importlib.invalidate_caches()


@pytest.mark.parametrize("name", [None, "generic"])
def test_generic_spider_needs_no_search(name):
    assert load_spider_class(name, ["no_such_package_anywhere"]) is GenericSpider


def test_spider_found_by_name(make_package):
    make_package({"alpha": SPIDER_ALPHA, "beta": SPIDER_BETA})
    cls = load_spider_class("beta", [PKG])
    assert cls.__name__ == "BetaSpider"
    assert cls.__module__ == f"{PKG}.beta"
    assert load_spider_class("alpha", [PKG]).__name__ == "AlphaSpider"


def test_find_spiders_lists_named_spiders_only(make_package):
    make_package({"alpha": SPIDER_ALPHA, "beta": SPIDER_BETA})
    assert sorted(find_spiders([PKG])) == ["alpha", "beta"]


def test_unknown_name_lists_known_spiders(make_package):
    make_package({"alpha": SPIDER_ALPHA, "beta": SPIDER_BETA})
    with pytest.raises(UsageError) as info:
        load_spider_class("gamma", [PKG])
    message = str(info.value)
    assert "'gamma'" in message
    assert "known: alpha, beta" in message


def test_unknown_name_with_no_spiders(make_package):
    make_package({})
    with pytest.raises(UsageError, match="none found"):
        load_spider_class("gamma", [PKG])


def test_two_spiders_with_one_name(make_package):
    make_package({"one": "from crawler import Spider\nclass A(Spider):\n    name = 'dup'\n",
                  "two": "from crawler import Spider\nclass B(Spider):\n    name = 'dup'\n"})
    with pytest.raises(UsageError, match="two spiders are named 'dup'"):
        load_spider_class("dup", [PKG])


def test_module_that_fails_to_import(make_package):
    make_package({"alpha": SPIDER_ALPHA, "broken": "raise RuntimeError('boom')\n"})
    with pytest.raises(UsageError) as info:
        load_spider_class("alpha", [PKG])
    assert f"{PKG}.broken" in str(info.value)
    assert "boom" in str(info.value)


def test_module_with_syntax_error(make_package):
    make_package({"bad": "def oops(:\n"})
    with pytest.raises(UsageError, match=f"{PKG}.bad"):
        find_spiders([PKG])


def test_missing_package(make_package):
    with pytest.raises(UsageError, match="no_such_spider_pkg_xyz"):
        load_spider_class("alpha", ["no_such_spider_pkg_xyz"])


def test_source_hash_stable_and_changes_with_file(make_package):
    pkg = make_package({"alpha": SPIDER_ALPHA})
    first = source_hash(load_spider_class("alpha", [PKG]))
    assert len(first) == 16 and int(first, 16) >= 0
    assert source_hash(load_spider_class("alpha", [PKG])) == first

    (pkg / "alpha.py").write_text(SPIDER_ALPHA + "\n# a changed line\n")
    _forget_package()
    importlib.invalidate_caches()
    changed = source_hash(load_spider_class("alpha", [PKG]))
    assert changed != first


def test_books_example_spider_loads_by_name(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir("/work/main")
    cls = load_spider_class("books", ["spiders"])
    assert cls.__name__ == "BooksSpider"
    assert cls.name == "books"
    assert cls.__module__ == "spiders.books"
    assert callable(getattr(cls, "parse_book", None))


# -- GenericSpider ------------------------------------------------------------------

PAGE = b"""<html><head><title>  My Page  </title>
<link rel="next" href="?page=2">
<link rel="stylesheet" href="style.css">
</head><body>
<a href="/a">a</a>
<a name="anchor">no href</a>
<map><area href="b.html"></map>
<img src="pic.png">
</body></html>"""


def test_generic_parse_html():
    response = Response("http://example.com/dir/page", 200, {"Content-Type": "text/html"}, PAGE,
                        depth=3)
    out = list(GenericSpider().parse(response))
    assert out[0] == {"url": "http://example.com/dir/page", "status": 200, "title": "My Page",
                      "depth": 3}
    requests = out[1:]
    assert all(isinstance(r, Request) for r in requests)
    assert sorted(r.url for r in requests) == sorted([
        "http://example.com/a", "http://example.com/dir/b.html",
        "http://example.com/dir/page?page=2"])


def test_generic_parse_without_title():
    response = Response("http://example.com/", 404, {"Content-Type": "text/html"},
                        b"<html><body>gone</body></html>")
    assert list(GenericSpider().parse(response)) == [
        {"url": "http://example.com/", "status": 404, "title": None, "depth": 0}]


def test_generic_parse_non_html_gives_item_only():
    body = b'{"html": "<a href=\\"/x\\">x</a>", "title": "<title>T</title>"}'
    response = Response("http://example.com/data.json", 200,
                        {"Content-Type": "application/json"}, body, depth=1)
    assert list(GenericSpider().parse(response)) == [
        {"url": "http://example.com/data.json", "status": 200, "title": None, "depth": 1}]
