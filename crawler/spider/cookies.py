"""Cookies that travel with the crawl: the cookies a response leaves in its jar go, as plain
data, with the requests its callback yields, so a session (a login) holds along a chain of
requests whichever worker fetches each of them. `meta["cookiejar"]` keeps sessions apart as in
Scrapy (a request with another cookiejar than its parent's starts with none of its cookies);
`meta["dont_merge_cookies"]` sends and keeps none; `Request.cookies` adds cookies of its own."""
from __future__ import annotations

import http.cookiejar
from typing import Any

from requests.cookies import RequestsCookieJar, create_cookie

from ..http.request import Request

Plain = list[dict[str, Any]]
_FIELDS = ("name", "value", "domain", "path", "secure", "expires")


def jar_for(task: dict[str, Any], request: Request) -> RequestsCookieJar:
    """The jar a request is fetched with: what its parent's response left, plus its own."""
    jar = RequestsCookieJar()
    if request.meta.get("dont_merge_cookies"):
        return jar
    for cookie in task.get("cookies") or ():
        jar.set_cookie(_cookie(cookie))
    for name, value in _own(request.cookies):
        jar.set(name, value)
    return jar


def carried(jar: http.cookiejar.CookieJar | None, request: Request) -> Plain | None:
    """The jar's cookies as plain data, for the requests this page leads to (None: none)."""
    if jar is None or request.meta.get("dont_merge_cookies"):
        return None
    cookies = [_plain(cookie) for cookie in jar if not cookie.is_expired()]
    return cookies or None


def attach(tasks: list[dict[str, Any]], cookies: Plain | None, parent: Request) -> None:
    """Give the page's cookies to the tasks that follow from it, in the same session."""
    if not cookies:
        return
    session = parent.meta.get("cookiejar")
    for task in tasks:
        meta = task.get("meta") or {}
        if meta.get("cookiejar") == session and not meta.get("dont_merge_cookies"):
            task["cookies"] = cookies


def _own(cookies: Any) -> list[tuple[str, str]]:
    if isinstance(cookies, dict):
        return [(str(k), str(v)) for k, v in cookies.items()]
    return [(str(c["name"]), str(c["value"])) for c in cookies or ()]


def _plain(cookie: http.cookiejar.Cookie) -> dict[str, Any]:
    plain = {name: getattr(cookie, name) for name in _FIELDS}
    plain["host_only"] = not cookie.domain_specified
    return plain


def _cookie(plain: dict[str, Any]) -> http.cookiejar.Cookie:
    cookie = create_cookie(plain["name"], plain["value"], domain=plain["domain"],
                           path=plain["path"], secure=plain["secure"], expires=plain["expires"])
    cookie.domain_specified = not plain.get("host_only", False)
    return cookie
