"""bench/sitecompare.py: what two crawls of a site found, judged from nginx's log lines."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
import sitecompare  # noqa: E402

BASE = "http://127.0.0.2:8080/"
SITE = {"name": "docs", "generator": "test", "base": BASE}


def crawl(tmp_path, who, requests, items):
    """A finished crawl as bench/realsites.py records it: nginx's log lines (uri, status,
    type) read back with read_log, and the items the crawler wrote."""
    log = tmp_path / f"{who}.log"
    log.write_text("".join(json.dumps({"t": "1.5", "m": "GET", "uri": uri, "status": str(status),
                                       "type": ctype, "bytes": "1", "ref": "", "ua": who})
                           + "\n" for uri, status, ctype in requests))
    return {"requests": sitecompare.read_log(str(log), 0, BASE), "items": items,
            "wall_s": 2.0, "cpu_s": 1.0, "exit_status": 0, "server_cpu_s": 0.1,
            "top_hwm_mb": 30.0, "children_hwm_mb": [40.0]}


def page(path, title, status=200):
    return {"url": BASE + path, "status": status, "title": title}


def test_html_pages_only_one_found_and_titles_that_differ(tmp_path):
    ours = crawl(tmp_path, "crawler",
                 [("/", 200, "text/html"), ("/a%7eb.html", 200, "text/html"),
                  ("/c.txt", 200, "text/plain"), ("/gone.html", 404, "text/html")],
                 [page("", "Home"), page("a~b.html", "A"), page("c.txt", None),
                  page("gone.html", "Not Found", 404)])
    theirs = crawl(tmp_path, "scrapy",
                   [("/", 200, "text/html"), ("/a~b.html", 200, "text/html"),
                    ("/x.html", 200, "application/xhtml+xml; charset=utf-8")],
                   [page("", "Home"), page("a~b.html", "A, again"), page("x.html", "X")])
    report = sitecompare.compare(SITE, {"crawler": ours, "scrapy": theirs}, {})
    stats = report["crawlers"]["crawler"]
    # A text/plain page and a 404 are not HTML pages; %7e and ~ are one URL.
    assert (stats["html_pages"], stats["items_200"]) == (2, 3)
    assert report["only_crawler"]["count"] == 0
    assert report["only_scrapy"]["examples"] == [(BASE + "x.html", "")]
    assert report["titles_differ"]["examples"] == [(BASE + "a~b.html", "A", "A, again")]
    assert stats["pages_per_s"] == 1.5
    failed = sitecompare.verdicts({"docs": report}, set())
    assert failed == ["docs: we found every HTML page Scrapy found", "docs: titles agree"]


def test_a_url_fetched_twice_and_an_item_never_served_fail_our_checks(tmp_path):
    ours = crawl(tmp_path, "crawler",
                 [("/", 200, "text/html"), ("/a.html", 200, "text/html"),
                  ("/a.html", 200, "text/html")],
                 [page("", "Home"), page("a.html", "A"), page("b.html", "B")])
    report = sitecompare.compare(SITE, {"crawler": ours}, {})
    stats = report["crawlers"]["crawler"]
    assert (stats["fetched_twice"], stats["fetched_twice_examples"]) == (1, [(2, "GET /a.html")])
    assert stats["items_not_served"] == [BASE + "b.html"]
    assert sitecompare.verdicts({"docs": report}, set()) == [
        "docs: we fetched no URL twice", "docs: our items agree with the server's log"]


def test_every_file_on_disk_of_a_linked_tree_must_be_a_page(tmp_path):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    for name in ("index.html", "sub/index.html", "sub/lost.html", "style.css"):
        (root / name).write_text("<title>t</title>")
    on_disk = sitecompare.html_on_disk(str(root), BASE)
    assert sorted(on_disk.values()) == ["index.html", "sub/index.html", "sub/lost.html"]
    ours = crawl(tmp_path, "crawler", [("/", 200, "text/html"), ("/sub/", 200, "text/html")],
                 [page("", "t"), page("sub/", "t")])
    report = sitecompare.compare(SITE, {"crawler": ours}, on_disk)
    # dir/ stands for dir/index.html
    assert report["files_fetched_by_none"]["examples"] == ["sub/lost.html"]
    assert sitecompare.verdicts({"docs": report}, set()) == []
    assert sitecompare.verdicts({"docs": report}, {"docs"}) == [
        "docs: we wrote a page for every HTML file"]
