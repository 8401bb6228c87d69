"""Example downloader middlewares, written the Scrapy way; enable them in settings.py or a
spider's custom_settings:

    DOWNLOADER_MIDDLEWARES = {"spiders.middlewares.RotateUserAgent": 400}
    USER_AGENTS = ["mybot/1.0 (+https://example.org/bot)", "mybot/1.0 (mirror)"]
    PROXIES = ["http://proxy-a:3128", "http://proxy-b:3128"]   # for RotateProxy

They run on the workers, around every request of this worker process.
"""
import itertools


class RotateUserAgent:
    """Each request gets the next User-Agent of the USER_AGENTS setting."""

    def __init__(self, agents):
        self.agents = itertools.cycle(agents)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.get("USER_AGENTS") or [crawler.settings["USER_AGENT"]])

    def process_request(self, request, spider):
        request.headers["User-Agent"] = next(self.agents)


class RotateProxy:
    """Each request goes through the next proxy of the PROXIES setting (meta["proxy"])."""

    def __init__(self, proxies):
        self.proxies = itertools.cycle(proxies)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings.get("PROXIES") or [None])

    def process_request(self, request, spider):
        request.meta["proxy"] = next(self.proxies)
