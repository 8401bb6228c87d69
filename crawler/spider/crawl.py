"""CrawlSpider and Rule, as Scrapy's: follow the links that rules extract, each rule naming
the callback for the pages its links lead to.

Only names and plain data travel: every request a rule makes has the callback `_callback`
(and the errback `_errback` when the rule has one), and its rule's index in
`meta["rule"]` (the link's text in `meta["link_text"]`, as in Scrapy). The worker that
fetches the page looks the rule up on its own copy of the spider.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..errors import CrawlerError, UsageError
from ..http.request import Request
from ..http.response import Response
from .base import Spider
from .failure import Failure
from .links import Link, LinkExtractor

RULE = "rule"            # meta key: the index in `rules` of the rule that made a request
LINK_TEXT = "link_text"  # meta key: the text of the link it follows

_default_link_extractor = LinkExtractor()


def _identity(links: list[Link]) -> list[Link]:
    return links


def _identity_request(request: Request, response: Response) -> Request | None:
    return request


class Rule:
    """How a CrawlSpider follows links: the pages `link_extractor` finds go to `callback`
    (a method name or a callable; None: no callback) with `cb_kwargs`, and their links are
    followed when `follow` (default: when there is no callback). `process_links(links)` may
    change or filter the links; `process_request(request, response)` the requests (None
    drops one); `errback(failure)` gets the failures. Each may be a name of a spider method."""

    def __init__(self, link_extractor: LinkExtractor | None = None,
                 callback: Callable | str | None = None, cb_kwargs: dict[str, Any] | None = None,
                 follow: bool | None = None, process_links: Callable | str | None = None,
                 process_request: Callable | str | None = None,
                 errback: Callable | str | None = None) -> None:
        self.link_extractor = link_extractor or _default_link_extractor
        self.callback, self.errback = callback, errback
        self.cb_kwargs = dict(cb_kwargs or {})
        self.follow = follow if follow is not None else not callback
        self.process_links = process_links or _identity
        self.process_request = process_request or _identity_request

    def _compile(self, spider: Spider, index: int) -> None:
        # Names (and functions of the spider's class body) become the spider's bound
        # methods; a name it lacks is an error now, not on every page.
        for attr in ("callback", "errback", "process_links", "process_request"):
            value = getattr(self, attr)
            if value is None:
                continue
            if not isinstance(value, str) and not callable(value):
                raise UsageError(f"rules[{index}]: {attr} must be a method name or a "
                                 f"callable, not {type(value).__name__}")
            name = value if isinstance(value, str) else getattr(value, "__name__", "")
            if isinstance(value, str) or getattr(type(spider), name, None) is value:
                value = getattr(spider, name, None)
                if not callable(value):
                    raise UsageError(f"rules[{index}]: {attr} {name!r} is not a method of "
                                     f"{type(spider).__name__}")
            setattr(self, attr, value)


class CrawlSpider(Spider):
    """Scrapy's CrawlSpider: `rules` (a sequence of Rule) say which links to follow and
    which callback gets each page. The responses of the start URLs go to
    `parse_start_url(response)` and their links through the rules. `parse` is the
    CrawlSpider's own: name callbacks otherwise."""

    rules: Sequence[Rule] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if type(self).parse is not CrawlSpider.parse:
            raise UsageError(f"{type(self).__name__} overrides parse(), which CrawlSpider "
                             "uses itself to apply the rules: name that callback otherwise")
        self._compile_rules()

    def _compile_rules(self) -> None:
        self._rules: list[Rule] = []
        for index, rule in enumerate(self.rules):
            if not isinstance(rule, Rule):
                raise UsageError(f"rules[{index}] is a {type(rule).__name__}, not a Rule")
            compiled = copy.copy(rule)  # the class's rules stay as written
            compiled._compile(self, index)
            self._rules.append(compiled)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """The start URLs' callback: parse_start_url, then every rule's links."""
        return self.parse_with_rules(response, self.parse_start_url, kwargs, True)

    def parse_start_url(self, response: Response, **kwargs: Any) -> Iterable[Any]:
        """Items and requests for a start URL's response (override; default none)."""
        return ()

    def process_results(self, response: Response, results: Iterable[Any]) -> Iterable[Any]:
        """What a rule's callback returned, before it is yielded (override to change it)."""
        return results

    def parse_with_rules(self, response: Response, callback: Callable | None,
                         cb_kwargs: dict[str, Any], follow: bool = True) -> Iterator[Any]:
        """What `callback` yields for the response, then (when `follow`) the requests for
        the links the rules extract from it."""
        if callback is not None:
            yield from self.process_results(response, callback(response, **cb_kwargs) or ())
        if follow:
            yield from self._requests_to_follow(response)

    def _requests_to_follow(self, response: Response) -> Iterator[Request]:
        if not response.is_html:
            return
        seen: set[Link] = set()
        for index, rule in enumerate(self._rules):
            links = [link for link in rule.link_extractor.extract_links(response)
                     if link not in seen]
            for link in rule.process_links(links):
                seen.add(link)
                request = rule.process_request(self._build_request(index, link), response)
                if request is not None:
                    yield request

    def _build_request(self, index: int, link: Link) -> Request:
        # The errback goes only where a rule has one: fewer fields on the wire.
        return Request(link.url, callback="_callback",
                       errback="_errback" if self._rules[index].errback else None,
                       meta={RULE: index, LINK_TEXT: link.text})

    def _callback(self, response: Response, **cb_kwargs: Any) -> Iterator[Any]:
        rule = self._rule(response.meta)
        return self.parse_with_rules(response, rule.callback, {**rule.cb_kwargs, **cb_kwargs},
                                     rule.follow)

    def _errback(self, failure: Failure) -> Iterable[Any]:
        errback = self._rule(failure.request.meta).errback
        return (errback(failure) or ()) if errback is not None else ()

    def _rule(self, meta: dict[str, Any]) -> Rule:
        index = meta.get(RULE)
        if not isinstance(index, int) or not 0 <= index < len(self._rules):
            raise CrawlerError(f"request meta[{RULE!r}] = {index!r} names no rule of "
                             f"{type(self).__name__} (it has {len(self._rules)})")
        return self._rules[index]
