"""Write expected.json: each corpus page's title and links, read by Chromium and by lxml.

Run once, from the repository root, after collect.py (needs Debian's `chromium` and
`chromium-driver`, and `pip install -e '.[corpus]'` for selenium):
    python tests/corpus/make_expected.py

Each page is served on 127.0.0.1 (server.py: nginx's types, or the page's entry in
CONTENT_TYPES) and read twice, independently:
* browser: headless Chromium loads it with JavaScript off (the crawler runs no scripts), and
  document.title, document.characterSet and the resolved href of every
  `a[href], area[href], link[rel=next][href]` are read from the DOM (a.href resolves against
  the document's base URL, <base href> included, and encodes the query in the page's
  encoding, as a click would);
* lxml: lxml.html on the raw bytes, with the HTTP charset when the server sends one and
  libxml2's own detection otherwise; links by the same definition, joined to <base href> and
  the page URL with urllib.
Fragments are dropped; a link into the server is stored as a path ("/sphinx/..."). The
expected values are the browser's; where lxml reads a page differently, the difference is
stored under "lxml" with the reason from WHY_LXML_DIFFERS. A second browser pass with
JavaScript on records what scripts change, under "scripts". Chromium can reach only
loopback: every other name fails to resolve, and a dead loopback proxy takes any other
request.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import urljoin, urldefrag

import lxml.html
from lxml import etree
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from crawler.urls import normalize  # noqa: E402
from server import CorpusServer  # noqa: E402

# The complete trees (collect.py), crawled end to end: folder -> the page to start from.
TREES = {"grohtml/pic": "grohtml/pic/pic.html",
         "docbook-xhtml/maint-guide": "docbook-xhtml/maint-guide/index.en.html"}

# Pages not served as a default nginx would (text/html, no charset), and why.
CONTENT_TYPES = {
    "apache/manual/ko/bind.html": (
        "text/html; charset=EUC-KR",
        "a server that names the charset the page declares, as Apache's AddCharset does by "
        "file extension (upstream names this file bind.html.ko.euc-kr); Debian's "
        "apache2-doc.conf says AddDefaultCharset off, so Debian's Apache sends plain "
        "text/html for it, as nginx does"),
    "apache/manual/ko/mpm.html": (
        "text/html; charset=utf-8",
        "nginx with `charset utf-8;` in its config, serving an EUC-KR page: the header wins "
        "over the page's <meta> (WHATWG), so the Korean title decodes to U+FFFD"),
}

# Why lxml reads a page otherwise than the browser (written after reading the report).
WHY_LXML_DIFFERS = {
    "apache/manual/ko/mpm.html": (
        "EUC-KR bytes decoded as UTF-8 (the header's charset): libxml2 turns an invalid "
        "sequence such as F0 B5 (a 4-byte lead and one continuation byte, then a lead byte) "
        "into one U+FFFD per byte; the WHATWG decoder, like Python's, into one per maximal "
        "subpart"),
}

READ_JS = """
function read(doc) {
  const links = [];
  for (const el of doc.querySelectorAll("a[href], area[href], link[rel=next][href]")) {
    const href = typeof el.href === "string" ? el.href : el.getAttribute("href");
    try { const u = new URL(href); u.hash = ""; links.push(u.href); }
    catch (e) { /* not a URL: a browser cannot follow it either */ }
  }
  return {url: doc.URL, title: doc.title, charset: doc.characterSet, links: links};
}
"""
# A sandboxed frame runs no meta refresh (the sandboxed automatic features flag).
FRAME_JS = """
const frame = document.createElement("iframe");
frame.id = "corpus-frame"; frame.sandbox = "allow-same-origin"; frame.src = arguments[0];
document.documentElement.appendChild(frame);
"""
FRAME_READY_JS = """
const doc = document.getElementById("corpus-frame").contentDocument;
return doc && doc.URL === arguments[0] && doc.readyState === "complete";
"""
_C0_SPACE = "".join(map(chr, range(0x21)))  # what the URL parser strips around an href
_WS = re.compile(r"[\t\n\f\r ]+")
_REFRESH = re.compile(rb"<meta[^>]+http-equiv=[\"']?refresh", re.I)


def browser(javascript: bool):
    """Headless Chromium that can reach loopback only."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--proxy-server=http://127.0.0.1:9", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    return driver


def read_with_browser(driver, url: str, framed: bool) -> dict:
    """What Chromium reads from the page. A page with a meta refresh would send the browser
    on at once, so it is read inside a sandboxed frame (on a page of the same server)."""
    if not framed:
        driver.get(url)
        seen = driver.execute_script(READ_JS + "return read(document);")
        if seen["url"] != url:
            raise SystemExit(f"{url}: the browser went on to {seen['url']}")
        return seen
    driver.get(url.rsplit("/", 1)[0] + "/corpus-frame-host")  # a 404 page: a blank host
    driver.execute_script(FRAME_JS, url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(FRAME_READY_JS, url))
    return driver.execute_script(
        READ_JS + 'return read(document.getElementById("corpus-frame").contentDocument);')


def read_with_lxml(body: bytes, url: str, content_type: str) -> dict:
    charset = re.search(r"charset=([^;\s]+)", content_type)
    parser = lxml.html.HTMLParser(encoding=charset.group(1)) if charset else None
    doc = lxml.html.document_fromstring(body, parser=parser)
    title = doc.find(".//title")
    bases = doc.xpath("//base/@href")
    base = urljoin(url, bases[0].strip(_C0_SPACE)) if bases else url
    links = [urldefrag(urljoin(base, href.strip(_C0_SPACE)))[0] for href in
             doc.xpath("//a/@href | //area/@href | //link[@rel='next']/@href")]
    text = title.text_content() if title is not None else ""
    return {"title": _WS.sub(" ", text).strip(" "), "links": links}


def relative(url: str, origin: str) -> str:
    return url[len(origin) - 1:] if url.startswith(origin) else url


def comparable(links: list[str]) -> set[str]:
    """The links as the crawler would fetch them (normalized; not http(s): dropped)."""
    return {n for n in map(normalize, links) if n is not None}


def differences(base: dict, other: dict) -> dict:
    diff = {}
    if other["title"] != base["title"]:
        diff["title"] = other["title"]
    mine, theirs = comparable(other["links"]), comparable(base["links"])
    if mine - theirs:
        diff["links_only_here"] = sorted(mine - theirs)
    if theirs - mine:
        diff["links_missing_here"] = sorted(theirs - mine)
    return diff


def pages() -> list[str]:
    return sorted(str(p.relative_to(HERE)) for p in HERE.rglob("*.html"))


def main() -> None:
    types = {path: ctype for path, (ctype, _) in CONTENT_TYPES.items()}
    server = CorpusServer(HERE, types).start()
    plain, scripted = browser(javascript=False), browser(javascript=True)
    try:
        out = {"browser": f"Chromium {plain.capabilities['browserVersion']}, JavaScript off",
               "lxml": ".".join(map(str, etree.LXML_VERSION)) + " (libxml2 "
                       + ".".join(map(str, etree.LIBXML_VERSION)) + ")",
               "trees": [{"seed": seed, "pages": [p for p in pages() if p.startswith(f"{t}/")]}
                         for t, seed in TREES.items()],
               "pages": {}}
        for path in pages():
            out["pages"][path] = read_page(path, server, plain, scripted)
    finally:
        plain.quit()
        scripted.quit()
        server.close()
    (HERE / "expected.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
    report(out)


def read_page(path: str, server: CorpusServer, plain, scripted) -> dict:
    url = server.url + path
    _, ctype, body = server.lookup("/" + path)
    framed = _REFRESH.search(body) is not None
    seen = read_with_browser(plain, url, framed)
    entry = {"content_type": ctype, "title": seen["title"], "charset": seen["charset"],
             "links": sorted({relative(u, server.url) for u in seen["links"]})}
    if framed:
        entry["browser_note"] = ("has a meta refresh, so read in a sandboxed frame, where "
                                 "refresh (and, in the scripts pass, scripts) are off; an "
                                 "undeclared encoding comes from the host page there")
    if path in CONTENT_TYPES:
        entry["content_type_why"] = CONTENT_TYPES[path][1]
    lxml_diff = differences(seen, read_with_lxml(body, url, ctype))
    if lxml_diff:
        entry["lxml"] = _relative_diff(lxml_diff, server.url)
        entry["lxml"]["why"] = WHY_LXML_DIFFERS.get(path, "not explained yet")
    script_diff = differences(seen, read_with_browser(scripted, url, framed))
    if script_diff:
        entry["scripts"] = _relative_diff(script_diff, server.url)
    return entry


def _relative_diff(diff: dict, origin: str) -> dict:
    return {k: [relative(u, origin) for u in v] if isinstance(v, list) else v
            for k, v in diff.items()}


def report(out: dict) -> None:
    for path, entry in out["pages"].items():
        extra = {k: entry[k] for k in ("lxml", "scripts") if k in entry}
        print(f"{path}: {entry['title']!r} {entry['charset']} {len(entry['links'])} links"
              + (f"\n    {json.dumps(extra, ensure_ascii=False)[:600]}" if extra else ""))


if __name__ == "__main__":
    main()
