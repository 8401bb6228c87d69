"""urllib3 connections with the address guard and the watchdog hook, and the adapter using them.

Before connecting, the host is resolved (within the fetch's deadline) and the connection
refused when any of its addresses is not public (crawler.addresses); then only the checked
addresses are connected to, so a DNS answer that changes between check and connect
(rebinding) does not get through. Seed hosts (the fetch's trusted hosts) are exempt from the
check. Through a proxy, the connection goes to the proxy and is not checked here (the
fetcher checks the target before; the proxy resolves it again).
Every socket a fetch uses, new or kept alive, is registered with the watchdog.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Mapping

import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions as u3
from requests import exceptions as rq

from . import addresses, http1, watchdog
from .failures import refuse_private


class _Connection:
    """Mixed into urllib3's connections: checks addresses before connecting (when `guarded`)
    and registers every socket of the running fetch with the watchdog."""

    guarded = True

    def _new_conn(self) -> socket.socket:
        ctx = watchdog.current()
        if ctx is None:
            return super()._new_conn()  # type: ignore[misc]
        sock = self._connect_resolved(ctx, self.guarded and ctx.guard and
                                      not ctx.trusts(self.host))
        ctx.watch(sock)
        return sock

    def _connect_resolved(self, ctx: watchdog.FetchContext, check: bool) -> socket.socket:
        """Look the name up within the fetch's deadline, check the addresses (`check`),
        then connect to those addresses only."""
        name = self._dns_host
        try:
            found = addresses.resolve(name, self.port, ctx.deadline - time.monotonic())
        except (OSError, UnicodeError) as exc:
            raise u3.NameResolutionError(self.host, self, exc) from exc
        if check:
            refuse_private(self.host, found)
        error: Exception | None = None
        for address in found:  # connect to the addresses checked, never to a new lookup
            self._dns_host = address
            try:
                return super()._new_conn()  # type: ignore[misc]
            except u3.NewConnectionError as exc:
                error = exc
            finally:
                self._dns_host = name
        assert error is not None
        raise error

    def request(self, *args: Any, **kwargs: Any) -> None:
        ctx = watchdog.current()
        if ctx is not None and self.sock is not None:  # a kept-alive connection, reused
            ctx.watch(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Connection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _ProxiedHTTPConnection(_HTTPConnection):
    guarded = False  # connects to the proxy; the target was checked before the request


class _ProxiedHTTPSConnection(_HTTPSConnection):
    guarded = False


def _pool(base: type, connection: type) -> type:
    return type(f"Guarded{base.__name__}", (base,), {"ConnectionCls": connection})


_DIRECT_POOLS = {"http": _pool(urllib3.HTTPConnectionPool, _HTTPConnection),
                 "https": _pool(urllib3.HTTPSConnectionPool, _HTTPSConnection)}
_PROXIED_POOLS = {"http": _pool(urllib3.HTTPConnectionPool, _ProxiedHTTPConnection),
                  "https": _pool(urllib3.HTTPSConnectionPool, _ProxiedHTTPSConnection)}
_REQUESTS_SEND = requests.adapters.HTTPAdapter.send


def _tls_pool_kwargs(verify: bool | str) -> dict[str, str]:
    """The TLS part of the pool key requests uses for `verify` (so both paths share one
    pool per host)."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    if verify is True:
        return {"cert_reqs": "CERT_REQUIRED"}
    return {"ca_cert_dir" if os.path.isdir(verify) else "ca_certs": verify,
            "cert_reqs": "CERT_REQUIRED"}


class Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with our connection classes (direct and through proxies), and
    `get()`: a plain GET without requests' per-request machinery (http:// on crawler.http1's
    kept-alive connections, https:// on urllib3's pools). `verify` is requests' (False, True
    or a CA bundle path) and the session's: both paths then check certificates alike."""

    def __init__(self, *args: Any, verify: bool | str = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain = http1.Pool()
        self.verify, self._pool_kwargs = verify, _tls_pool_kwargs(verify)

    def close(self) -> None:
        super().close()
        self.plain.close()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _DIRECT_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _PROXIED_POOLS
        return manager

    @property
    def bypassable(self) -> bool:
        """False when send() has been replaced (a test double such as `responses`): then
        every request must go through it."""
        return type(self).send is _REQUESTS_SEND

    def get(self, url: str, where: tuple[str, str, int | None, str],
            headers: Mapping[str, str], timeout: float) -> Any:
        """GET url, given as (scheme, host, port, path?query), without a proxy: what send()
        does for such a request with verify=self.verify, with failures the fetcher
        classifies alike, minus building a requests.Response."""
        scheme, host, port, target = where
        if scheme == "http":
            return self.plain.get(host, port, target, headers.items(), timeout)
        try:
            pool = self.poolmanager.connection_from_host(host, port, scheme, self._pool_kwargs)
        except u3.LocationValueError as exc:
            raise rq.InvalidURL(exc) from None
        self.cert_verify(pool, url, self.verify, None)
        try:
            return pool.urlopen(
                "GET", target, body=None, headers=headers, redirect=False,
                assert_same_host=False, preload_content=False, decode_content=False,
                retries=self.max_retries, chunked=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout))
        except Exception as exc:
            mapped = as_requests_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc


def as_requests_error(exc: Exception) -> Exception:
    """The exception requests' HTTPAdapter.send raises for what urllib3's urlopen raised
    (the same mapping, so the failure reasons do not depend on the path taken)."""
    if isinstance(exc, (u3.ProtocolError, OSError, u3.ClosedPoolError)):
        return rq.ConnectionError(exc)
    if isinstance(exc, u3.MaxRetryError):
        return _from_max_retry(exc)
    if isinstance(exc, u3.ProxyError):
        return rq.ProxyError(exc)
    if isinstance(exc, u3.SSLError):
        return rq.SSLError(exc)
    if isinstance(exc, u3.ReadTimeoutError):
        return rq.ReadTimeout(exc)
    if isinstance(exc, u3.InvalidHeader):
        return rq.InvalidHeader(exc)
    return exc


def _from_max_retry(exc: u3.MaxRetryError) -> Exception:
    reason = exc.reason
    if isinstance(reason, u3.ConnectTimeoutError) and \
            not isinstance(reason, u3.NewConnectionError):
        return rq.ConnectTimeout(exc)
    kinds = ((u3.ResponseError, rq.RetryError), (u3.ProxyError, rq.ProxyError),
             (u3.SSLError, rq.SSLError))
    for kind, mapped in kinds:
        if isinstance(reason, kind):
            return mapped(exc)
    return rq.ConnectionError(exc)
