"""One task in, one result out: fetch, run the spider callback, vet its output.

Runs on workers. The result is plain data: items, new request tasks (normalized
and fingerprinted here, so the master only dedups), and counts of what was dropped.
A request that fails for good (after its retries) goes to its errback, if it has one.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from typing import Any, Callable, Iterable, Mapping

from .. import components, signals, urls
from ..link import wire
from ..errors import CloseSpider, IgnoreRequest, PageError
from ..feeds import warc
from ..http.cache import CacheConfig, HttpCache
from ..http.fetcher import FetchConfig, Fetcher, FetchError
from ..http.request import Request
from ..http.response import Response
from ..pipelines.fetch import MediaFetch, load_media_pipelines
from . import cookies
from .base import GenericSpider, Spider
from .failure import Failure, HttpError
from .httpauth import HttpAuth
from .linkpath import Hrefs, LinkVetter
from .stats import SpiderStats
from .middleware import Middlewares
from .rules import REDIRECTS, Rules, retry_after
from .sitemap import LASTMOD

__all__ = ["Handler", "Rules", "build_handler", "retry_after"]

log = logging.getLogger(__name__)
# What of a robots.txt is read (RFC 9309: at least 500 KiB must be): a bigger file would
# cost the master time to ship and parse, for rules no site needs.
ROBOTS_MAX_BYTES = 500 * 1024


def build_handler(spider: Spider, settings: dict[str, Any], allowed_domains: list[str],
                  trusted: list[str], media_pipelines: Iterable[str] = ()) -> Handler:
    """A worker's handler for the crawl: its fetcher, rules, middlewares, the signals of
    the spider's crawler, and the media pipelines (ITEM_PIPELINES paths) it downloads for.
    `trusted`: origins exempt from the address guard."""
    crawler = spider.crawler  # made with the spider (make_spider)
    auth = HttpAuth.for_spider(spider, settings)
    middlewares = Middlewares(
        spider, [auth] * (auth is not None) + components.load(
            "DOWNLOADER_MIDDLEWARES", settings["DOWNLOADER_MIDDLEWARES"], crawler),
        components.load("SPIDER_MIDDLEWARES", settings["SPIDER_MIDDLEWARES"], crawler))
    fetcher = Fetcher(FetchConfig.from_settings(settings, trusted))  # the seeds' origins
    if settings["HTTPCACHE_ENABLED"]:
        fetcher = HttpCache(fetcher, CacheConfig.from_settings(settings, spider.name))
    if settings["WARC_OUTPUT"]:
        warc.require_warcio()
    rules = Rules.from_settings(settings, allowed_domains)
    pipelines = load_media_pipelines(media_pipelines, crawler)
    media = MediaFetch(pipelines, fetcher, rules, middlewares) if pipelines else None
    return Handler(spider, fetcher, rules, middlewares, crawler.signals,
                   keep_validators=bool(settings["JOBDIR"]), media=media)


class Handler:
    """Turns a leased task into a result dict for the master."""

    def __init__(self, spider: Spider, fetcher: Fetcher, rules: Rules,
                 middlewares: Middlewares | None = None,
                 signal_manager: signals.SignalManager | None = None,
                 keep_validators: bool = False, media: MediaFetch | None = None) -> None:
        self.spider, self.fetcher, self.rules, self.media = spider, fetcher, rules, media
        # With a JOBDIR, results carry each page's ETag and Last-Modified (for --recrawl).
        self.keep_validators = keep_validators
        self.middlewares = middlewares or Middlewares(spider)
        crawler = getattr(spider, "crawler", None)
        self.stats = crawler.stats if crawler is not None else SpiderStats()
        self.signals = signal_manager or signals.SignalManager()
        # The generic spider's own parse, its Requests seen by no middleware: its links go
        # as hrefs, vetted in one pass (crawler.spider.linkpath).
        self._hrefs = type(spider).parse is GenericSpider.parse and \
            not self.middlewares.see_output
        self.links = LinkVetter(rules)

    def handle(self, task: dict[str, Any]) -> dict[str, Any]:
        """Fetch and parse one task; never raises. An unexpected error (a bug) is logged and
        fails the task, so its lease is settled and the crawl can end."""
        stats = self.stats
        stats.begin_page()
        try:
            result = self._handle(task)
        except Exception:
            log.exception("internal error on %s", task.get("url"))
            result = {"outcome": "failed", "reason": "internal_error"}
        counts = stats.end_page()
        if counts:  # the spider's own stats.inc_value() while handling this page
            result["stats"] = counts
        return result

    def _handle(self, task: dict[str, Any]) -> dict[str, Any]:
        if task.get("robots"):
            return self._robots(task["url"])
        if task.get("kind") == "media":  # a download for FilesPipeline or ImagesPipeline
            if self.media is None:
                return {"outcome": "failed", "reason": "no_pipeline"}
            return self.media.handle(task)
        request = Request.from_task(task)
        if "revisit" in task:  # a --recrawl: ask only for a copy newer than ours
            _conditional(request, task["revisit"])
        jar = cookies.jar_for(task, request) if self.rules.cookies else None
        result = self._download(request, task, jar)
        cookies.attach(result.get("requests", ()), cookies.carried(jar, request), request)
        return result

    def _download(self, request: Request, task: dict[str, Any], jar: Any) -> dict[str, Any]:
        depth, attempt = task.get("depth", 0), task.get("attempt", 0)
        started = time.monotonic()
        try:
            got = self.middlewares.download(request,
                                            lambda r: self.fetcher.fetch(r, depth, cookies=jar))
        except FetchError as exc:
            if exc.retryable and self.rules.retries_left(request, attempt):
                result = {"outcome": "retry", "reason": exc.reason}
            else:
                result = self._fail(Failure(request, exc.reason, exc), depth)
            result["latency"] = time.monotonic() - started
            return result
        except IgnoreRequest as exc:
            return self._fail(Failure(request, "ignored", exc), depth)
        latency = time.monotonic() - started
        if isinstance(got, Request):  # a middleware asks for another request instead
            return self._follow(got, depth, {"outcome": "done", "latency": latency})
        response = got
        if self.signals.has_receivers(signals.response_received):
            self.signals.send(signals.response_received, response=response, request=request,
                              spider=self.spider)
        revisit = task.get("revisit")  # its validators ({} for none) in a recrawl, else None
        if response.status == 304 and revisit is not None and \
                not self.rules.allowed(request, 304, self.spider):
            result = {"outcome": "done", "status": 304}  # unchanged: nothing to parse
        else:
            result = self._respond(request, response, attempt, depth)
        result["latency"] = latency
        result["bytes"] = len(response.body)
        self._keep(result, response, revisit)
        pause = retry_after(response.headers.get("Retry-After"))
        if pause is not None and response.status in (429, 503):
            result["retry_after"] = pause
        return result

    def _keep(self, result: dict[str, Any], response: Response,
              revisit: dict[str, str] | None) -> None:
        """What the result carries for the journal and the WARC output: the page's
        validators, the exchange's records; in a recrawl, what a sitemap lists, with when."""
        if revisit is not None and result.get("requests"):
            listed = [(t["fp"], t["meta"][LASTMOD]) for t in result["requests"]
                      if LASTMOD in (t.get("meta") or {})]
            if listed:
                result["listed"] = listed
        if self.keep_validators:
            headers = response.headers
            if "ETag" in headers or "Last-Modified" in headers:
                validators = (headers.get("ETag"), headers.get("Last-Modified"))
                if revisit is None or response.status != 304 or not _same(validators, revisit):
                    result["validators"] = validators  # (a 304 repeating ours: the master
                    # keeps those it sent, crawler.frontier.recrawl.Rounds.settled)
        if response.exchange is not None:
            result["warc"] = warc.records(response.url, response.exchange,
                                          revisit is not None and response.status == 304)

    def _respond(self, request: Request, response: Response, attempt: int,
                 depth: int) -> dict[str, Any]:
        """Retry, redirect, fail or parse, by the response's status (Scrapy's rules)."""
        status, rules = response.status, self.rules
        if status in rules.retry_codes and rules.retries_left(request, attempt):
            return {"outcome": "retry", "reason": f"http_{status}"}
        if rules.follows_redirect(request, response, self.spider):
            return self._redirect(request, response, depth, response.headers["Location"],
                                  status)
        if not 200 <= status < 300 and not rules.allowed(request, status, self.spider):
            return self._fail(Failure(request, f"http_{status}", HttpError(response),
                                      response), depth)
        refresh = rules.refresh(request, response)
        if refresh is not None:
            return self._redirect(request, response, depth, refresh, "meta refresh")
        if self._hrefs and request.callback in (None, "parse") and not request.cb_kwargs \
                and not self.signals.has_receivers(signals.request_dropped):
            page = self.spider.page  # type: ignore[attr-defined]
            return self._run(request, lambda: _as_output(response, *page(response)), depth,
                             {"outcome": "done", "status": status})
        callback = self._method(request.callback or "parse")
        if callback is None:
            log.error("%s: spider has no callback %r", request.url, request.callback)
            return {"outcome": "failed", "reason": "spider_error", "status": status}
        return self._run(request, lambda: callback(response, **request.cb_kwargs), depth,
                         {"outcome": "done", "status": status}, response)

    def _fail(self, failure: Failure, depth: int) -> dict[str, Any]:
        """A request failed for good: its errback (if any) may still yield items and requests."""
        result: dict[str, Any] = {"outcome": "failed", "reason": failure.reason}
        if failure.response is not None:
            result["status"] = failure.response.status
        if failure.request.errback is None:
            return result
        errback = self._method(failure.request.errback)
        if errback is None:
            log.error("%s: spider has no errback %r", failure.request.url,
                      failure.request.errback)
            return result
        return self._run(failure.request, lambda: errback(failure), depth, result,
                         failure.response)

    def _method(self, name: str) -> Callable | None:
        method = getattr(self.spider, name, None)
        return method if callable(method) else None

    def _robots(self, url: str) -> dict[str, Any]:
        """Fetch a robots.txt, following up to 5 redirects; the master parses it."""
        try:
            for _ in range(6):
                robots = Request(url)
                response = self.fetcher.fetch(robots, cookies=cookies.jar_for({}, robots))
                location = response.headers.get("Location")
                if response.status not in REDIRECTS or not location:
                    break
                url = urls.join(url, location)
        except FetchError as exc:
            log.warning("%s: %s", url, exc)  # the details; the master gets the reason
            return {"outcome": "retry" if exc.retryable else "failed", "reason": exc.reason}
        if response.status >= 500 or response.status == 429:
            return {"outcome": "retry", "reason": f"http_{response.status}"}
        body = response.body
        if len(body) > ROBOTS_MAX_BYTES:
            body = body[:body.rfind(b"\n", 0, ROBOTS_MAX_BYTES) + 1]  # whole lines only
        result = {"outcome": "done", "status": response.status,
                  "robots": Response(url, response.status, response.headers, body).text}
        self._keep(result, response, False)
        return result

    def _redirect(self, request: Request, response: Response, depth: int, location: str,
                  why: int | str) -> dict[str, Any]:
        """A redirect (`why`: its status, or "meta refresh") as a new request."""
        hops = request.meta.get("redirect_times", 0) + 1
        if hops > self.rules.redirect_max:
            return self._fail(Failure(request, "redirect_max", HttpError(response), response),
                              depth)
        meta = dict(request.meta, redirect_times=hops,
                    redirect_urls=request.meta.get("redirect_urls", []) + [request.url],
                    redirect_reasons=request.meta.get("redirect_reasons", []) + [why])
        # As browsers (and Scrapy) do: 301/302/303 turn a POST into a GET, 307/308 keep it.
        method = request.method
        if why == "meta refresh" or why == 303 and method != "HEAD" or \
                why in (301, 302) and method == "POST":
            method = "GET"
        headers = request.headers
        if method != request.method:
            headers = {k: v for k, v in headers.items()
                       if k.lower() not in ("content-type", "content-length")}
        target = request.replace(url=urls.join(request.url, location), method=method,
                                 headers=headers, body=request.body if method != "GET" else b"",
                                 meta=meta, dont_filter=False)
        return self._follow(target, depth, {"outcome": "done", "status": response.status})

    def _follow(self, target: Request, depth: int, result: dict[str, Any]) -> dict[str, Any]:
        """The page is replaced by another request at the same depth (a redirect, or a
        middleware's): the result carries only that."""
        dropped: Counter = Counter()
        result.update(items=[], requests=self._vet([target], depth, dropped, same_depth=True),
                      dropped=dict(dropped))
        return result

    def _run(self, request: Request, call: Callable[[], Any], depth: int,
             result: dict[str, Any], response: Response | None = None) -> dict[str, Any]:
        """Run a callback or errback and add what it yields to the result. One that raises
        fails the page but keeps what it yielded before, as in Scrapy."""
        items: list[dict] = []
        new: list[Request] = []
        pages: list[Hrefs] = []
        limit, over, kept = self.rules.links_per_page, 0, 0
        try:
            output = call() or ()
            if response is not None:
                output = self.middlewares.spider_output(response, output)
            for out in output:
                if isinstance(out, Request):
                    if limit and kept >= limit:  # kept from neither memory nor the wire
                        over += 1
                        continue
                    if out.meta:
                        out.meta = wire.plain(out.meta, "Request.meta")
                    if out.cb_kwargs:
                        out.cb_kwargs = wire.plain(out.cb_kwargs, "Request.cb_kwargs")
                    new.append(out)
                    kept += 1
                elif type(out) is Hrefs:
                    if limit and kept + len(out.hrefs) > limit:
                        over += kept + len(out.hrefs) - max(kept, limit)
                        out.hrefs = out.hrefs[:max(0, limit - kept)]
                    kept += len(out.hrefs)
                    pages.append(out)
                else:
                    items.append(wire.plain(_as_item(out)))
        except wire.NotPlainData as exc:
            log.error("spider error on %s: %s", request.url, exc)
            result.update(outcome="failed", reason="spider_error")
        except PageError as exc:
            log.warning("%s: %s", request.url, exc)
            result.update(outcome="failed", reason=exc.reason)
        except CloseSpider as exc:
            log.info("%s: the spider closes the crawl (%s)", request.url, exc.reason)
            result["close"] = str(exc.reason)[:200] or "cancelled"
        except Exception:
            log.exception("spider error on %s", request.url)
            result.update(outcome="failed", reason="spider_error")
        dropped: Counter = Counter()
        if over:
            dropped["links_per_page"] = over
            log.warning("%s: %d requests beyond LINKS_PER_PAGE_LIMIT (%d) dropped",
                        request.url, over, limit)
        tasks = self._vet(new, depth, dropped) if new else []
        for links in pages:
            tasks.extend(self.links.tasks(links, depth + 1, dropped))
        result.update(items=items, requests=tasks, dropped=dict(dropped))
        return result

    def _vet(self, requests: list[Request], depth: int, dropped: Counter,
             same_depth: bool = False) -> list[dict[str, Any]]:
        rules, child = self.rules, depth if same_depth else depth + 1
        tasks = []
        for request in requests:
            if rules.depth_limit and child > rules.depth_limit:
                self._drop(dropped, "depth", request)
                continue
            if len(request.url) > rules.url_length_limit:
                self._drop(dropped, "url_too_long", request)
                continue
            request.priority -= 0 if same_depth else child * rules.depth_priority
            task = request.to_task(child, rules.ignore_params)
            if task is None:
                self._drop(dropped, "invalid_url", request)
            elif rules.trap_repeat and urls.repeats_segment(task["url"], rules.trap_repeat):
                self._drop(dropped, "trap", request)
            elif rules.allowed_domains and not request.dont_filter and \
                    not urls.in_domains(task["host"], rules.allowed_domains):
                self._drop(dropped, "offsite", request)
            else:
                tasks.append(task)
        return tasks

    def _drop(self, dropped: Counter, reason: str, request: Request) -> None:
        dropped[reason] += 1
        if self.signals.has_receivers(signals.request_dropped):
            self.signals.send(signals.request_dropped, request=request, reason=reason,
                              spider=self.spider)


_CONDITIONAL = (("If-None-Match", "if-none-match", "etag"),
                ("If-Modified-Since", "if-modified-since", "last_modified"))


def _conditional(request: Request, revisit: dict[str, str]) -> None:
    """Add If-None-Match / If-Modified-Since from the validators of the last response to
    a request just made from its task (so its headers are its own); headers the request
    sets itself win."""
    headers = request.headers
    given = {name.lower() for name in headers} if headers else ()
    for name, lower, key in _CONDITIONAL:
        value = revisit.get(key)
        if value and lower not in given:
            headers[name] = value


def _same(validators: tuple[str | None, str | None], revisit: dict[str, str]) -> bool:
    """The validators a response gave are those a revisit was sent with."""
    return validators == (revisit.get("etag"), revisit.get("last_modified"))


def _as_output(response: Response, item: dict[str, Any], hrefs: list[str]) -> list[Any]:
    return [item, Hrefs(response, hrefs)] if hrefs else [item]


def _as_item(out: Any) -> dict[str, Any]:
    if isinstance(out, dict):
        return out
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.asdict(out)
    if isinstance(out, Mapping):
        return dict(out)
    raise TypeError(f"callback yielded {type(out).__name__}: yield dicts or Requests")
