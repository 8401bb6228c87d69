"""HTTP Basic authentication for one domain, as Scrapy's HttpAuthMiddleware.

The credentials come from the spider's `http_user` / `http_pass` attributes or the
HTTPAUTH_USER / HTTPAUTH_PASS settings, and go only to `http_auth_domain` / HTTPAUTH_DOMAIN
(and its subdomains); None there sends them to every host. Credentials without a domain are
refused, so a link to another site never receives them.
"""
from __future__ import annotations

from typing import Any

from w3lib.http import basic_auth_header

from .. import urls
from ..errors import UsageError
from ..http.request import Request

_UNSET = object()


class HttpAuth:
    """A downloader middleware adding `Authorization: Basic ...` to requests for its domain
    that do not set one themselves."""

    def __init__(self, header: str, domain: str | None) -> None:
        self.header, self.domain = header, domain

    @classmethod
    def for_spider(cls, spider: Any, settings: dict[str, Any]) -> HttpAuth | None:
        """The spider's middleware, None without credentials; UsageError without a domain."""
        user = getattr(spider, "http_user", "") or settings["HTTPAUTH_USER"]
        password = getattr(spider, "http_pass", "") or settings["HTTPAUTH_PASS"]
        if not (user or password):
            return None
        domain = getattr(spider, "http_auth_domain", _UNSET)
        if domain is _UNSET:
            domain = settings["HTTPAUTH_DOMAIN"]
        if domain == "":
            raise UsageError("HTTP credentials need the domain they are for: set the spider's "
                             "http_auth_domain (or HTTPAUTH_DOMAIN), or None for every host")
        return cls(basic_auth_header(user, password).decode("ascii"), domain)

    def process_request(self, request: Request, spider: Any) -> None:
        if any(name.lower() == "authorization" for name in request.headers):
            return None
        if self.domain is None or urls.in_domains(urls.host_of(request.url), (self.domain,)):
            request.headers["Authorization"] = self.header
        return None
