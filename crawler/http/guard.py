"""The address guard: which IP addresses a crawl may connect to, and the one place it connects.

A crawler follows links that anyone can write, so a page can point it at
http://127.0.0.1:8080/admin, http://169.254.169.254/ (a cloud metadata service)
or a host name that resolves into the operator's private network. Every connection to a
crawled host is opened by `Guard.connect`: it resolves the host within the fetch's
deadline, refuses the connection when any address is not a public unicast address (see
`is_public`), and then connects only to the addresses it checked, so the name is not
looked up a second time (DNS rebinding). The seeds' origins (scheme, host and port: not
every service of their host) are trusted: resolved and pinned the same way, without the
check. Through a proxy, the proxy resolves the name again, so there `Guard.check` is best
effort.

Everything here except `resolve()` and `Guard.connect` is a pure function of its arguments.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING, Iterable, Union
from urllib.parse import urlsplit

from .errors import FetchError

if TYPE_CHECKING:
    from .deadline import Deadline

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# Ranges refused whatever `is_global` says in the running Python version: its tables have
# changed between releases, and a few ranges it calls global are no place for a crawler.
_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8",           # "this network"
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",       # shared address space (carrier-grade NAT)
    "127.0.0.0/8",         # loopback
    "169.254.0.0/16",      # link-local (cloud metadata services live here)
    "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4",         # multicast
    "240.0.0.0/4",         # reserved, and the broadcast address
    "::/128", "::1/128",   # unspecified, loopback
    "100::/64",            # discard-only
    "2001:db8::/32",       # documentation
    "fc00::/7",            # unique local
    "fe80::/10",           # link-local
    "fec0::/10",           # site-local (deprecated, still routed by some stacks)
    "64:ff9b:1::/48",      # local-use NAT64
    "ff00::/8",            # multicast
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def parse_ip(text: str) -> IPAddress | None:
    """An address from its text ('[::1]' and zone ids like 'fe80::1%eth0' accepted), else None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and may be routed to, if any:
    IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002::/16),
    NAT64 (64:ff9b::/96) and Teredo (the client's address)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: str | IPAddress) -> bool:
    """True when a crawler may connect to the address: a global unicast address.

    Loopback, private, link-local, shared (100.64/10), unspecified, multicast, reserved and
    documentation ranges are refused; an IPv6 address that carries an IPv4 address (mapped,
    6to4, NAT64, Teredo, compatible) is judged by that IPv4 address too. Text that is not an
    address is refused.
    """
    if isinstance(address, str):
        parsed = parse_ip(address)
        if parsed is None:
            return False
        address = parsed
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if address.ipv4_mapped is not None:
            return is_public(inner)  # a mapped address is an IPv4 connection
        if inner is not None and not is_public(inner):
            return False
    if any(address in net for net in _REFUSED if net.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def refused(addresses: Iterable[str | IPAddress]) -> list[str]:
    """The addresses among these that `is_public` refuses, as text, in their order."""
    return [str(a) for a in addresses if not is_public(a)]


def normalize_host(host: str) -> str:
    """A host name as the guard compares it: lowercased, no brackets, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def is_trusted(host: str, trusted: Iterable[str]) -> bool:
    """True when host is one of the trusted host names (exactly: no subdomains)."""
    return normalize_host(host) in {normalize_host(t) for t in trusted}


MAX_LOOKUPS = 32  # lookup threads at once: hung ones cannot pile up without bound
_LOOKUPS = threading.BoundedSemaphore(MAX_LOOKUPS)


def resolve(host: str, port: int | None, timeout: float | None = None) -> list[str]:
    """Every address host resolves to for a TCP connection, without duplicates, in the
    resolver's order. Raises socket.gaierror (an OSError) when the name does not resolve,
    and TimeoutError when a `timeout` is given and the answer takes longer: getaddrinfo
    cannot be interrupted, so it then runs on a daemon thread left to finish alone."""
    if timeout is None or _is_ip(host):
        return _lookup(host, port)
    started = time.monotonic()
    if not _LOOKUPS.acquire(timeout=max(timeout, 0.0)):  # all taken by hung lookups
        raise TimeoutError(f"resolving {host}: {MAX_LOOKUPS} lookups already waiting")
    answer: list = []
    done = threading.Event()

    def run() -> None:
        try:
            answer.append(_lookup(host, port))
        except BaseException as exc:  # handed to the waiting thread
            answer.append(exc)
        finally:
            _LOOKUPS.release()
            done.set()

    threading.Thread(target=run, name=f"resolve-{host}", daemon=True).start()
    if not done.wait(max(timeout - (time.monotonic() - started), 0.0)):
        raise TimeoutError(f"resolving {host} took over {timeout:.1f} s")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def _lookup(host: str, port: int | None) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(sockaddr[0].split("%", 1)[0], None)
    if not seen:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    return list(seen)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return False
    return True


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin such as "http://127.0.0.1:8080" (a URL's path is
    ignored; the default port filled in), or None when it is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, normalize_host(parts.hostname), port or _DEFAULT_PORTS[scheme]


class Guard:
    """The address policy of one fetcher: on or off (ADDRESS_GUARD), and what is exempt:
    trusted origins ("http://127.0.0.1:8080": the seeds' own, and ADDRESS_GUARD_TRUSTED),
    and trusted host names (every scheme and port of that host)."""

    def __init__(self, enabled: bool, trusted: Iterable[str] = ()) -> None:
        self.enabled = enabled
        trusted = list(trusted)
        self.origins = frozenset(filter(None, (origin_key(t) for t in trusted if "://" in t)))
        self.trusted = frozenset(normalize_host(h) for h in trusted if "://" not in h)

    def checks(self, host: str, port: int | None = None, scheme: str = "http") -> bool:
        """True when connections to host (at port, for scheme) must pass the check."""
        if not self.enabled:
            return False
        name = normalize_host(host)
        if name in self.trusted:
            return False
        port = port or _DEFAULT_PORTS.get(scheme, 80)
        return (scheme, name, port) not in self.origins

    def connect(self, host: str, port: int, deadline: "Deadline",
                check: bool = True, scheme: str = "http") -> socket.socket:
        """A TCP connection to host, to an address resolved within the deadline and, unless
        `check` is False (a proxy) or the origin is exempt, checked first: FetchError
        blocked_address when any address is not public."""
        found = resolve(host, port, deadline.remaining())
        if check and self.checks(host, port, scheme):
            refuse(host, found)
        error: OSError | None = None
        for address in found:  # the addresses checked, never a new lookup
            try:
                sock = socket.create_connection((address, port), deadline.remaining())
            except OSError as exc:
                error = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        assert error is not None
        raise error

    def check(self, host: str, port: int, deadline: "Deadline", scheme: str = "http") -> None:
        """The check alone, for a request a proxy will connect: resolve the name here and
        refuse it when it points inward (the proxy resolves it again)."""
        if not self.checks(host, port, scheme):
            return
        try:
            found = resolve(host, port, deadline.remaining())
        except (OSError, UnicodeError) as exc:
            raise FetchError("blocked_address", f"{host} does not resolve here, so the address "
                             f"guard cannot check it ({exc}); set ADDRESS_GUARD=False to crawl "
                             "names only the proxy can resolve") from None
        refuse(host, found)


def refuse(host: str, found: Iterable[str]) -> None:
    """FetchError blocked_address when any address host resolves to is not public."""
    bad = refused(found)
    if bad:
        raise FetchError("blocked_address", f"{host} resolves to {bad[0]}, not a public address")
