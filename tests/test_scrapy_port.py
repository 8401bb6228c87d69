"""A typical multi-callback Scrapy spider (login form, listing pages, pagination, detail pages
with cb_kwargs, an errback) ported by changing its imports only: it yields the same items as
the Scrapy original (run too when Scrapy is installed: pip install -e '.[bench]')."""
import importlib.util
import subprocess
import sys
from http.cookies import SimpleCookie

import pytest

from crawler.sitegen import Site
from pageserver import PageHandler, serving
from procs import QUIET, base_env, read_jsonl

SITE = Site(pages=45, links=2)
MISSING = "/book/999.html"  # listed on the first catalogue page, gone: the errback's

needs_scrapy = pytest.mark.skipif(importlib.util.find_spec("scrapy") is None,
                                  reason="Scrapy is not installed (pip install -e '.[bench]')")


def run_scrapy(source: str, base: str, tmp_path) -> list[dict]:
    """The items `scrapy runspider` writes for a spider taking -a base=... (Scrapy itself)."""
    spider, out = tmp_path / "scrapy_spider.py", tmp_path / "scrapy.jsonl"
    spider.write_text(source)
    run = subprocess.run([sys.executable, "-m", "scrapy", "runspider", str(spider), "-a",
                          f"base={base}", "-o", str(out), "-s", "LOG_LEVEL=WARNING",
                          "-s", "ROBOTSTXT_OBEY=False"], cwd=tmp_path, env=base_env(),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return read_jsonl(out)


SCRAPY_SPIDER = '''
import scrapy
from scrapy.spidermiddlewares.httperror import HttpError


class ShopSpider(scrapy.Spider):
    name = "shop"

    def __init__(self, base=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = base

    async def start(self):  # Scrapy 2.13+ (2.19 calls only this)
        yield scrapy.Request(self.base + "/login", callback=self.login)

    def login(self, response):
        yield scrapy.FormRequest.from_response(
            response, formdata={"user": "ann", "password": "pw"}, callback=self.after_login)

    def after_login(self, response):
        yield response.follow("/catalogue/page-1.html", callback=self.parse_listing)

    def parse_listing(self, response):
        for href in response.css("a.book::attr(href)").getall():
            yield response.follow(href, callback=self.parse_book, errback=self.failed,
                                  cb_kwargs={"listing": response.url})
        next_page = response.css("a.next::attr(href)").get()
        if next_page:
            yield response.follow(next_page, callback=self.parse_listing)

    def parse_book(self, response, listing):
        yield {"title": response.css("h1::text").get(), "url": response.url,
               "price": response.css(".price::text").get(), "listing": listing}

    def failed(self, failure):
        if failure.check(HttpError):
            yield {"missing": failure.value.response.url,
                   "status": failure.value.response.status}
'''
# The port: two import lines.
PORT = SCRAPY_SPIDER.replace(
    "import scrapy\nfrom scrapy.spidermiddlewares.httperror import HttpError\n",
    "import crawler as scrapy\nfrom crawler import HttpError\n")


class Shop(PageHandler):
    """SITE's catalogue and books, for logged-in visitors only."""

    def do_GET(self):
        if self.path == "/login":
            return self.send(200, b'<form method="post" action="/session"><input name="user">'
                                  b'<input type="password" name="password">'
                                  b'<input type="submit" value="Log in"></form>')
        if SimpleCookie(self.headers.get("Cookie", "")).get("who") is None:
            return self.send(403, b"log in first")
        status, _, body = SITE.render(self.path) if self.path != "/welcome" else (200, "", b"hi")
        if self.path == "/catalogue/page-1.html":
            body = body.replace(b"</ul>", f'<li><a class="book" href="{MISSING}">x</a></ul>'
                                .encode())
        self.send(status, body)

    def do_POST(self):
        form = self.rfile.read(int(self.headers["Content-Length"]))
        if form != b"user=ann&password=pw":
            return self.send(400, b"bad login")
        self.send(302, b"", {"Location": "/welcome", "Set-Cookie": "who=ann; Path=/"})


@pytest.fixture
def shop():
    with serving(Shop) as url:
        yield url


def expected(base: str) -> list[dict]:
    books = []
    for n in range(1, SITE.catalogues + 1):
        listing = f"{base}/catalogue/page-{n}.html"
        for i in range((n - 1) * 20, min(n * 20, SITE.books)):
            status, _, body = SITE.render(f"/book/{i}.html")
            title = body.split(b"<h1>")[1].split(b"</h1>")[0].decode()
            price = body.split(b'class="price">')[1].split(b"</p>")[0].decode()
            books.append({"title": title, "url": f"{base}/book/{i}.html", "price": price,
                          "listing": listing})
    return books + [{"missing": base + MISSING, "status": 404}]


def key(item: dict) -> str:
    return item.get("url") or item["missing"]


def test_the_ported_spider_yields_what_the_scrapy_original_would(shop, project, run_master):
    (project / "spiders" / "shop.py").write_text(PORT)
    out = project / "ours.jsonl"
    master = run_master(["--spider", "shop", "-a", f"base={shop}", "--workers", 2, "-o", out,
                         "-s", "ROBOTSTXT_OBEY=false", *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    assert sorted(read_jsonl(out), key=key) == sorted(expected(shop), key=key)


@needs_scrapy
def test_the_scrapy_original_yields_the_same(shop, tmp_path):
    items = run_scrapy(SCRAPY_SPIDER, shop, tmp_path)
    assert sorted(items, key=key) == sorted(expected(shop), key=key)


SCRAPY_LOADER_SPIDER = '''
import scrapy
from itemloaders.processors import MapCompose, TakeFirst
from scrapy.loader import ItemLoader


class BookItem(scrapy.Item):
    title = scrapy.Field(output_processor=TakeFirst())
    price = scrapy.Field(input_processor=MapCompose(float), output_processor=TakeFirst())
    url = scrapy.Field(output_processor=TakeFirst())
    words = scrapy.Field()


class BookLoader(ItemLoader):
    default_item_class = BookItem
    words_in = MapCompose(str.split)


class LoaderSpider(scrapy.Spider):
    name = "loader"

    def __init__(self, base=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [base + "/catalogue/page-1.html"]

    def parse(self, response):
        yield from response.follow_all(css="a.book", callback=self.parse_book)

    def parse_book(self, response):
        loader = BookLoader(response=response)
        loader.add_css("title", "h1::text")
        loader.add_css("price", ".price::text")
        loader.add_value("url", response.url)
        loader.add_css("words", "h1::text")
        yield loader.load_item()
'''
LOADER_PORT = SCRAPY_LOADER_SPIDER.replace("import scrapy\n", "import crawler as scrapy\n").replace(
    "from scrapy.loader import ItemLoader", "from crawler import ItemLoader")


class Books(PageHandler):
    def do_GET(self):
        status, _, body = SITE.render(self.path)
        self.send(status, body)


def loader_expected(base: str) -> list[dict]:
    books = []
    for i in range(min(20, SITE.books)):
        body = SITE.render(f"/book/{i}.html")[2].decode()
        title = body.split("<h1>")[1].split("</h1>")[0]
        price = body.split('class="price">')[1].split("</p>")[0]
        books.append({"title": title, "price": float(price),
                      "url": f"{base}/book/{i}.html", "words": title.split()})
    return books


def test_a_spider_with_declared_items_and_an_item_loader_ports_by_its_imports(
        project, run_master):
    (project / "spiders" / "loader.py").write_text(LOADER_PORT)
    out = project / "ours.jsonl"
    with serving(Books) as base:
        master = run_master(["--spider", "loader", "-a", f"base={base}", "--workers", 2,
                             "-o", out, "-s", "ROBOTSTXT_OBEY=false", *QUIET], timeout=40)
        assert master.returncode == 0, master.describe()
        assert sorted(read_jsonl(out), key=key) == sorted(loader_expected(base), key=key)


@needs_scrapy
def test_the_scrapy_original_of_the_loader_spider_yields_the_same(tmp_path):
    with serving(Books) as base:
        items = run_scrapy(SCRAPY_LOADER_SPIDER, base, tmp_path)
        assert sorted(items, key=key) == sorted(loader_expected(base), key=key)


SCRAPY_JSON_SPIDER = '''
import scrapy
from scrapy.http import JsonRequest


class ApiSpider(scrapy.Spider):
    name = "api"

    def __init__(self, base=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.base = base

    async def start(self):
        yield JsonRequest(self.base + "/api/search", data={"q": "book", "page": 1})

    def parse(self, response):
        found = response.json()
        for book in found["books"]:
            yield {"title": book, "page": found["page"]}
        if found["next"]:
            yield JsonRequest(self.base + "/api/search", data={"q": "book", "page": found["next"]})
'''
JSON_PORT = SCRAPY_JSON_SPIDER.replace("import scrapy\nfrom scrapy.http import JsonRequest\n",
                                       "import crawler as scrapy\nfrom crawler import JsonRequest\n")


class Api(PageHandler):
    """A JSON search API: POST {"q", "page"} as JSON, three pages of results."""

    def do_POST(self):
        import json
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Type") != "application/json" or \
                "application/json" not in self.headers.get("Accept", ""):
            return self.send(415, b"JSON only")
        page = json.loads(body)["page"]
        reply = {"page": page, "books": [f"book {page}.{i}" for i in range(3)],
                 "next": page + 1 if page < 3 else None}
        self.send(200, json.dumps(reply).encode(), {"Content-Type": "application/json"})


def api_expected() -> list[dict]:
    return [{"title": f"book {p}.{i}", "page": p} for p in (1, 2, 3) for i in range(3)]


def test_a_json_api_spider_ports_by_its_imports(project, run_master):
    (project / "spiders" / "api.py").write_text(JSON_PORT)
    out = project / "ours.jsonl"
    with serving(Api) as base:
        master = run_master(["--spider", "api", "-a", f"base={base}", "--workers", 1,
                             "-o", out, "-s", "ROBOTSTXT_OBEY=false", *QUIET], timeout=40)
        assert master.returncode == 0, master.describe()
    assert sorted(read_jsonl(out), key=str) == sorted(api_expected(), key=str)


@needs_scrapy
def test_the_scrapy_original_of_the_json_api_spider_yields_the_same(tmp_path):
    with serving(Api) as base:
        items = run_scrapy(SCRAPY_JSON_SPIDER, base, tmp_path)
    assert sorted(items, key=str) == sorted(api_expected(), key=str)
