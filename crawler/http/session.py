"""One thread's session: the headers, cookie jar and connections a requests.Session would hold,
and each Request turned into exactly what requests would send.

requests spends about as much CPU preparing a request (merging settings, copying the cookie
jar, re-parsing and re-quoting the URL) as sending it. For a request whose URL is already in
the form requests would send (what crawler.urls.normalize produces), whose method is a plain
token and whose headers are strings, this module does what requests' preparation does,
directly: the session's headers merged with the request's in requests' order, the cookies
of the jar, Content-Length as requests sets it. Any other request is prepared by requests
itself (quoting, IDNA, user info in the URL, bytes headers, ...). Either way it is sent by
the one transport, crawler.http.client, and cookies are stored by requests' own helpers.
"""
from __future__ import annotations

import http.client
import http.cookiejar
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from .client import DEFAULT_PORTS, Client, Outgoing, Response
from .errors import FetchError
from .headers import Headers
from .request import Request

Where = tuple[str, str, int | None, str]  # scheme, host, port, path and query

# URLs requests sends unchanged: lowercase scheme and host, a path, an optional non-empty
# query, only characters that need no quoting, no fragment, no user info
_SHAPE = re.compile(r"(https?)://([a-z0-9_][a-z0-9_.-]*)(?::([1-9][0-9]{0,4}))?"
                    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*"
                    r"(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]+)?)\Z")
# percent-escapes requests would rewrite: malformed, lowercase, or of an unreserved character
_ODD_ESCAPE = re.compile(r"%(?![0-9A-F]{2})|%(?:2[DE]|3[0-9]|[46][1-9A-F]|[57][0-9A]|5F|7E)")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|\Z)")
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Z]+\Z")  # a token (upper case: Request's)
_NO_BODY_LENGTH = ("GET", "HEAD")  # methods requests sends no Content-Length: 0 for


def where(url: str) -> Where | None:
    """(scheme, host, port, path?query) when requests would send url as it is, else None."""
    match = _SHAPE.match(url)
    if match is None:
        return None
    scheme, host, port, target = match.groups()
    if "%" in target and _ODD_ESCAPE.search(target):
        return None
    if "/." in target and _DOT_SEGMENT.search(target.split("?", 1)[0]):
        return None
    if port is None:
        return scheme, host, None, target
    return (scheme, host, int(port), target) if int(port) <= 65535 else None


class Session:
    """One thread's headers, cookies and connections (so not thread-safe)."""

    def __init__(self, headers: dict[str, str], cookies: bool, client: Client) -> None:
        self.headers = headers  # sent with every request, in this order
        self._names = frozenset(name.lower() for name in headers)
        self.usable = all(_valid(item) for item in headers.items())  # else: requests decides
        self.cookies = RequestsCookieJar()
        if not cookies:
            self.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.client = client
        self._requests: requests.Session | None = None

    def prepare(self, request: Request, quick: bool = True,
                cookies: http.cookiejar.CookieJar | None = None) -> Outgoing:
        """The request as requests would send it, with the cookies of `cookies` (default:
        the session's jar); FetchError when it cannot be sent."""
        if not _METHOD.match(request.method):
            raise FetchError("invalid_request", f"method {request.method!r} is not a token")
        jar = self.cookies if cookies is None else cookies
        place = where(request.url) if quick and self.usable else None
        if place is not None and _plain(request.headers):
            return self._quick(request, place, jar)
        return self._prepared(request, jar)

    def _quick(self, request: Request, place: Where, jar: http.cookiejar.CookieJar
               ) -> Outgoing:
        scheme, host, port, target = place
        method, body, own = request.method, request.body, request.headers
        host_header: str | None = _host_header(scheme, host, port)
        if own or body or method != "GET":
            headers: Mapping[str, str] = self._merged(request.url, own or {}, method, body, jar)
            if "Host" in headers:  # http.client then sends that one, in its place
                host_header = None
        else:
            headers = self.headers
            if "cookie" not in self._names and next(iter(jar), None) is not None:
                cookie = get_cookie_header(jar, _Sent(request.url, headers))
                if cookie is not None:
                    headers = dict(headers, Cookie=cookie)
        return Outgoing(method, request.url, scheme, host, port, target, headers, body,
                        host_header)

    def _merged(self, url: str, own: dict[str, Any], method: str, body: bytes,
                jar: http.cookiejar.CookieJar) -> Headers:
        """requests' merge_setting, prepare_cookies and prepare_content_length, in order."""
        headers = Headers(self.headers)
        headers.update(own)
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]
        if next(iter(jar), None) is not None:
            cookie = get_cookie_header(jar, _Sent(url, headers))
            if cookie is not None:
                headers["Cookie"] = cookie
        if body:
            headers["Content-Length"] = str(len(body))
        elif method not in _NO_BODY_LENGTH and "Content-Length" not in headers:
            headers["Content-Length"] = "0"
        return _identity_unless_given(headers)

    def _prepared(self, request: Request, jar: http.cookiejar.CookieJar) -> Outgoing:
        session = self._requests_session()
        session.cookies = jar
        prepared = session.prepare_request(requests.Request(
            request.method, request.url, headers=request.headers, data=request.body or None))
        url = prepared.url or ""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise FetchError("invalid_url", f"no connection adapters were found for {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise FetchError("invalid_url", f"{url!r}: {exc}") from None
        headers = _identity_unless_given(prepared.headers)
        host = None if "Host" in headers else _host_header(parts.scheme, parts.hostname, port)
        body = prepared.body or b""
        return Outgoing(request.method, url, parts.scheme, parts.hostname, port,
                        prepared.path_url, headers, body.encode() if isinstance(body, str)
                        else body, host)

    def _requests_session(self) -> requests.Session:
        if self._requests is None:
            session = self._requests = requests.Session()
            session.trust_env = False  # no proxies or .netrc from the environment
            session.headers = CaseInsensitiveDict(self.headers)
        return self._requests

    def store_cookies(self, out: Outgoing, response: Response,
                      cookies: http.cookiejar.CookieJar | None = None) -> None:
        """Set-Cookie headers into `cookies` (default: the session's jar), as requests
        stores them."""
        if "set-cookie" in response.headers or "set-cookie2" in response.headers:
            jar = self.cookies if cookies is None else cookies
            extract_cookies_to_jar(jar, out, _Received(response.fields))  # type: ignore

    def close(self) -> None:
        """Close the connections this session keeps."""
        self.client.close()
        if self._requests is not None:
            self._requests.close()


class _Sent:
    """A request as requests' cookie helpers see it (they read .url and .headers)."""

    __slots__ = ("url", "headers")

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url, self.headers = url, headers


class _Received:
    """A response as requests' cookie helpers see it (._original_response.msg)."""

    __slots__ = ("msg",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self.msg = http.client.HTTPMessage()
        for name, value in fields:
            self.msg[name] = value

    @property
    def _original_response(self) -> "_Received":
        return self


def _plain(headers: dict | None) -> bool:
    """Headers requests would take as they are: str names, str (or None) values, valid."""
    return not headers or all(isinstance(n, str) and (v is None or isinstance(v, str) and
                                                      _valid((n, v)))
                              for n, v in headers.items())


def _identity_unless_given(headers: Mapping[str, str]) -> Mapping[str, str]:
    """http.client's addition when no Accept-Encoding is sent: identity, before the others."""
    if "Accept-Encoding" in headers:
        return headers
    return Headers([("Accept-Encoding", "identity"), *headers.items()])


def _host_header(scheme: str, host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port is None or port == DEFAULT_PORTS[scheme] else f"{name}:{port}"


def _valid(header: tuple[str, str]) -> bool:
    try:
        check_header_validity(header)
    except (requests.exceptions.InvalidHeader, ValueError, TypeError):
        return False
    return True
