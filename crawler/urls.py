"""URL rules: normalize for fetching, canonicalize for dedup, fingerprint, host and scope.

Two forms of a URL matter. `normalize()` gives the URL we fetch: scheme and host
lowercased, IDN as punycode, default port and fragment dropped, dot segments
resolved, percent-encoding made uniform, query order kept. `fingerprint()`
hashes a stricter form: query parameters sorted and tracking/session parameters
removed, so that URLs naming the same page are fetched once.
"""
from __future__ import annotations

import functools
import hashlib
import re
from typing import Iterable
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import idna

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_SESSION_IN_PATH = re.compile(r";(?:jsessionid|phpsessid|sid)=[^/?#]*", re.I)
_HOST_OK = re.compile(r"^[a-z0-9_.\-]+$|^\[[0-9a-f:.]+\]$")


def normalize(url: str, base: str | None = None) -> str | None:
    """The URL to fetch, or None when it is not a crawlable http(s) URL."""
    try:
        url = urljoin(base, url.strip()) if base is not None else url.strip()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return None
        host = _host(parts.hostname, parts.netloc)
        port = parts.port
    except (ValueError, UnicodeError):
        return None
    if host is None:
        return None
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    path = _escape(remove_dot_segments(parts.path or "/"), _PATH_SAFE)
    query = _escape(parts.query, _QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def identify_uncached(url: str, ignore_params: tuple[str, ...] = (), method: str = "GET",
                      body: bytes = b"") -> tuple[str, str, bytes] | None:
    """(normalized url, host, fingerprint) of a request, or None when not crawlable."""
    normalized = normalize(url)
    if normalized is None:
        return None
    return normalized, host_of(normalized), fingerprint(normalized, method, body, ignore_params)


# Sites link to the same pages from page after page: a worker meets most URLs many times.
identify = functools.lru_cache(maxsize=1 << 16)(identify_uncached)


def fingerprint(url: str, method: str = "GET", body: bytes = b"",
                ignore_params: Iterable[str] = ()) -> bytes:
    """16-byte identity of a request whose URL is already normalized."""
    key = canonical(url, ignore_params)
    if method != "GET" or body:
        key = f"{method} {key} " + hashlib.blake2b(body, digest_size=16).hexdigest()
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def canonical(url: str, ignore_params: Iterable[str] = ()) -> str:
    """A normalized URL in its dedup form: sorted query, session and tracking ids removed."""
    scheme, netloc, path, query, _ = urlsplit(url)
    path = _SESSION_IN_PATH.sub("", path)
    if query:
        ignored = _Ignored(ignore_params)
        pairs = [p for p in query.split("&") if p and _param_name(p) not in ignored]
        query = "&".join(sorted(pairs))
    return urlunsplit((scheme, netloc, path, query, ""))


def join(base: str, url: str) -> str:
    """urljoin that never raises: a link too malformed to join is returned as given
    (normalize() will then refuse it)."""
    return Joiner(base)(url)


class Joiner:
    """Resolves links against one base URL (RFC 3986, section 5.2). A page has hundreds
    of links and urljoin costs ~10 us each: the forms pages use (absolute, absolute-path,
    relative-path, query-only, fragment-only) are resolved here with string operations;
    the rest go to urljoin."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.origin = origin_of(base)
        if self.origin is not None:
            rest = base[len(self.origin):].partition("#")[0]
            self._path = rest.partition("?")[0]
            self._document = self.origin + rest  # the base without its fragment
            self._directory = self._path[:self._path.rfind("/") + 1] or "/"
            self.directory_url = self.origin + self._directory  # what relative paths join

    def __call__(self, url: str) -> str:
        url = url.strip()
        if url.startswith(("http://", "https://")) or self.origin is None \
                or "\t" in url or "\n" in url or "\r" in url:
            return url if url.startswith(("http://", "https://")) else self._urljoin(url)
        first = url[:1]
        if first == "#" or not url:
            return self._document + url
        if first == "?":
            return self.origin + self._path + url
        if first == "/":
            if url.startswith("//"):
                return self._urljoin(url)
            return self._resolved("", url)
        colon = url.find(":")
        if colon != -1 and not any(c in url[:colon] for c in "/?#"):
            return self._urljoin(url)  # a scheme of its own (mailto:, javascript:, ...)
        return self._resolved(self._directory, url)

    def _resolved(self, directory: str, url: str) -> str:
        cut = len(url)
        for mark in "?#":
            at = url.find(mark, 0, cut)
            if at != -1:
                cut = at
        path = directory + url[:cut]
        if "/." in path:
            path = remove_dot_segments(path)
        return self.origin + path + url[cut:]

    def _urljoin(self, url: str) -> str:
        try:
            return urljoin(self.base, url)
        except ValueError:
            return url


def origin_of(url: str) -> str | None:
    """scheme://netloc of an http(s) URL, None for anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _DEFAULT_PORTS:
        return None
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].split('#', 1)[0]}"


class _Ignored:
    """Parameter names to ignore, lowercased; a trailing '*' matches a prefix (utm_*)."""

    def __init__(self, names: Iterable[str]) -> None:
        names = [n.lower() for n in names]
        self.exact = {n for n in names if not n.endswith("*")}
        self.prefixes = tuple(n[:-1] for n in names if n.endswith("*"))

    def __contains__(self, name: str) -> bool:
        return name in self.exact or (bool(self.prefixes) and name.startswith(self.prefixes))


def repeats_segment(url: str, limit: int) -> bool:
    """True when one path segment occurs more than `limit` times (/a/b/a/b/a/b/a/...)."""
    if url.count("/") < limit + 3:  # two after the scheme, one per segment: too few
        return False
    segments = [s for s in urlsplit(url).path.split("/") if s]
    return len(segments) > limit and \
        max(segments.count(s) for s in set(segments)) > limit


def host_of(url: str) -> str:
    """The politeness key of a normalized URL: its host name, without port."""
    return urlsplit(url).hostname or ""


def in_domains(host: str, domains: Iterable[str]) -> bool:
    """True when host is one of the domains or a subdomain of one. Give a set or frozenset
    for speed: the host and each of its parents is one lookup, however many domains."""
    if not isinstance(domains, (set, frozenset)):
        domains = frozenset(domains)
    while host not in domains:
        dot = host.find(".")
        if dot < 0:
            return False
        host = host[dot + 1:]
    return True


def remove_dot_segments(path: str) -> str:
    """Resolve '.' and '..' segments (RFC 3986, section 5.2.4)."""
    if "." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    absolute = path.startswith("/")
    for seg in segments[1:] if absolute else segments:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if segments[-1] in (".", ".."):
        out.append("")
    return ("/" if absolute else "") + "/".join(out)


def _host(hostname: str | None, netloc: str) -> str | None:
    if not hostname:
        return None
    if "[" in netloc:
        host = f"[{hostname}]"
    else:
        host = hostname.rstrip(".")
        if not host.isascii():
            host = to_ascii_host(host)
            if host is None:
                return None
    return host if _HOST_OK.match(host) else None


def to_ascii_host(name: str) -> str | None:
    """A host name as browsers send it: UTS #46 mapping (non-transitional: 'straße.de' is
    xn--strae-oqa.de, not strasse.de), each non-ASCII label in punycode; None when the name
    holds characters no host may have."""
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return ".".join(label if label.isascii() else _alabel(label)
                    for label in mapped.rstrip(".").split("."))


def _alabel(label: str) -> str:
    try:
        return idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        # Valid for browsers though not for IDNA2008 (symbols such as U+2603): plain punycode.
        return "xn--" + label.encode("punycode").decode("ascii")


def _escape(text: str, safe: str) -> str:
    if not text:
        return text
    if "%" in text:
        text = _PCT.sub(_unquote_unreserved, text)
        text = _BAD_PCT.sub("%25", text)
    if text.isascii() and not _needs_quote(text, safe):
        return text
    return quote(text, safe=safe)


def _needs_quote(text: str, safe: str) -> bool:
    return any(not (c.isalnum() or c in safe) for c in text)


def _unquote_unreserved(match: re.Match) -> str:
    byte = int(match.group(1), 16)
    return chr(byte) if byte in _UNRESERVED else "%" + match.group(1).upper()


def _param_name(pair: str) -> str:
    return unquote(pair.partition("=")[0]).lower()
