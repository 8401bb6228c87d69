"""An example spider for a catalogue site: read it in a minute, then write your own.

Run it against the demo site:  python -m crawler.demo --spider books
"""
from crawler import Spider


class BooksSpider(Spider):
    name = "books"
    custom_settings = {"DOWNLOAD_DELAY": 0}

    def parse(self, response):
        # Every catalogue page lists books; follow each to its own page.
        yield from response.follow_all(css="a.book", callback="parse_book")
        # Then the next catalogue page, with the same callback.
        yield from response.follow_all(css="a.next")

    def parse_book(self, response):
        yield {
            "title": response.css("h1::text").get(),
            "price": response.css(".price::text").get(),
            "url": response.url,
            "depth": response.depth,
        }
