"""The only module that touches multiprocessing.managers.

The master registers its queue objects on a BaseManager server running in its
own threads; workers connect with proxies. The link itself (sockets, TLS, the
plain-data unpickler, the listener's limits) is crawler.channel's. Client calls carry
a deadline, so a hung master makes calls fail with OSError instead of hanging forever.
Whatever goes wrong in a call that is not the network's (a reply the protocol does not
know, a refused pickle, the master's own exception) reaches the caller as RemoteError:
every error a worker can get from its master is in LOST.
"""
from __future__ import annotations

import functools
import ipaddress
import itertools
import logging
import socket
import ssl
import threading
from multiprocessing import AuthenticationError, managers
from multiprocessing.managers import RemoteError
from typing import Any, Callable

from . import channel
from .channel import ClientTls, Limits
from ..errors import UsageError
from .wire import ProtocolError

log = logging.getLogger(__name__)
SERIALIZER = "crawler"
# The master is gone, or unfit to talk to (a reply the protocol does not allow): reconnect.
LOST = (OSError, EOFError, RemoteError, ProtocolError)
_call_timeout = 10.0
_tls: ClientTls | None = None  # how this process checks its master (None: plain TCP)
_peer = threading.local()  # on each server thread: the address of the client it serves
_servers = itertools.count()

# What each registered object exposes to workers.
EXPOSED = {
    "url_queue": ("lease", "exchange"),
    "result_queue": ("put",),
    "seen": ("__contains__", "__len__", "get", "unseen"),
    "control": ("hello", "bye", "status"),
    "crawl": ("add", "stop"),  # crawler.add, crawler.stop
}


class _Proxy(managers.BaseProxy):
    def _callmethod(self, methodname: str, args: tuple = (), kwds: dict | None = None) -> Any:
        with _remote_errors(self._token.address):
            return super()._callmethod(methodname, args, kwds or {})


def _proxy_type(name: str, methods: tuple[str, ...]) -> type:
    def method(m: str) -> Callable:
        return lambda self, *args, **kwds: self._callmethod(m, args, kwds)
    return type(name, (_Proxy,), {"_exposed_": methods, **{m: method(m) for m in methods}})


_PROXIES = {name: _proxy_type(f"{name}_proxy", methods) for name, methods in EXPOSED.items()}


class _remote_errors:
    """Any error of a call but the network's and a refused key becomes RemoteError."""

    def __init__(self, address: Any) -> None:
        self.address = address

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (OSError, EOFError, RemoteError,
                                           AuthenticationError)) \
                or not isinstance(exc, Exception):
            return False
        if isinstance(exc, ProtocolError):
            log.warning("master at %s sent what the protocol does not allow (%s); the "
                        "connection is dropped", channel.fmt(self.address), exc)
        raise RemoteError(f"{type(exc).__name__}: {exc}") from None


def parse_address(text: str, port_zero: bool = False) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT') -> (host, port); UsageError when malformed.
    An empty host means 127.0.0.1; port 0 (any free port) only when `port_zero`."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    low = 0 if port_zero else 1
    if not sep or not port.isdigit() or not low <= int(port) < 65536:
        raise UsageError(f"{text!r}: expected HOST:PORT")
    return host, int(port)


def set_call_timeout(seconds: float) -> None:
    """Deadline for every call this process makes to a master."""
    global _call_timeout
    _call_timeout = seconds


def check_listen(address: tuple[str, int]) -> None:
    """UsageError unless a master could listen on address (as the manager server will)."""
    try:
        with socket.socket(socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen()
    except OSError as exc:
        raise _cannot_listen(address, exc) from None


def _cannot_listen(address: tuple[str, int], exc: OSError) -> UsageError:
    return UsageError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror or exc}")


def is_loopback(host: str) -> bool:
    """True for an address of this host only (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def listening(address: tuple[str, int]) -> bool:
    """True when something accepts TCP connections at address."""
    try:
        with socket.create_connection(address, timeout=_call_timeout):
            return True
    except OSError:
        return False


def set_tls(tls: ClientTls | None) -> None:
    """How this process checks its master: TLS (a CA bundle or a pinned fingerprint), or
    None for plain TCP."""
    global _tls
    _tls = tls


class _Server(managers.Server):
    """The manager server, trimmed to what workers need: no shutdown, debug_info or
    fallback methods (#GETVALUE would pickle the whole seen dict), and no reference
    counting (the objects served live as long as the master: a peer's decref must not
    remove them from under the others)."""

    public = ["create", "accept_connection", "dummy", "incref", "decref"]
    fallback_mapping: dict = {}

    def accepter(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except OSError as exc:
                if not isinstance(exc, ConnectionRefusedError):  # EMFILE: make room, wait
                    channel.reports.note(f"accept failed ({exc.strerror or exc})", "listener")
                    self.listener.evict_oldest()
                    self.stop_event.wait(0.05)
                continue
            try:
                threading.Thread(target=self.handle_request, args=(conn,), daemon=True).start()
            except RuntimeError:  # no thread to be had: this peer waits for its retry
                conn.close()
                self.stop_event.wait(0.05)

    def accept_connection(self, c: Any, name: str) -> None:
        _peer.address = getattr(c, "peer", None)  # this thread serves only this connection
        super().accept_connection(c, name)

    def incref(self, c: Any, ident: str) -> None:
        return None

    def decref(self, c: Any, ident: str) -> None:
        return None


def peer_address() -> tuple[str, int] | None:
    """The client address of the call being served on this thread (None elsewhere)."""
    return getattr(_peer, "address", None)


def _client(address: tuple[str, int], authkey: bytes | None = None) -> channel.Channel:
    sock = socket.create_connection(address, timeout=_call_timeout)
    try:
        channel.tune(sock)
        if _tls is not None:
            sock = _tls.wrap(sock, address[0])
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise AuthenticationError(f"the master's TLS certificate does not verify: "
                                  f"{exc.verify_message}") from None
    except BaseException:
        sock.close()
        raise
    conn = channel.Channel(sock, address)
    conn.set_timeout(_call_timeout)
    if authkey is not None:
        with _remote_errors(address):
            managers.connection.answer_challenge(conn, authkey)
            managers.connection.deliver_challenge(conn, authkey)
    return conn


managers.listener_client[SERIALIZER] = (channel.Listener, _client)


class _ClientManager(managers.BaseManager):
    pass


for _name in EXPOSED:
    _ClientManager.register(_name, proxytype=_PROXIES[_name])


def serve(objects: dict[str, Any], address: tuple[str, int], authkey: bytes,
          limits: Limits = Limits(), tls: ssl.SSLContext | None = None) -> tuple[str, int]:
    """Serve the master's objects from daemon threads; return the bound address."""
    server_manager = type("_ServerManager", (managers.BaseManager,), {"_registry": {}})
    for name, obj in objects.items():
        server_manager.register(name, callable=_constant(obj), proxytype=_PROXIES[name],
                                exposed=EXPOSED[name])
    # managers.Server makes its listener from the serializer's entry: one of its own
    # carries this server's limits and TLS.
    serializer = f"{SERIALIZER}-server-{next(_servers)}"
    managers.listener_client[serializer] = (
        functools.partial(channel.Listener, limits=limits, tls=tls), _client)
    try:  # checked before anything started (check_listen), but the port may be gone since
        server = _Server(server_manager._registry, address, authkey, serializer)
    except OSError as exc:
        raise _cannot_listen(address, exc) from None
    server.stop_event = threading.Event()
    threading.Thread(target=server.accepter, name="manager-accept", daemon=True).start()
    return server.address


def _constant(obj: Any) -> Callable[[], Any]:
    return lambda: obj


def _forget_connections(address: tuple[str, int]) -> None:
    """Proxies share one cached connection per thread and per address, for ever: after
    a master restart at the same address it is dead, and new proxies would reuse it."""
    cached = managers.BaseProxy._address_to_local.pop(address, None)
    conn = getattr(cached[0], "connection", None) if cached else None
    if conn is not None:
        conn.close()


def connect(address: tuple[str, int], authkey: bytes) -> dict[str, Any]:
    """Connect to a master; return its proxies by name. Raises one of LOST, or
    multiprocessing.AuthenticationError (a wrong key, or a TLS certificate that does
    not verify)."""
    _forget_connections(address)
    manager = _ClientManager(address=address, authkey=authkey, serializer=SERIALIZER)
    with _remote_errors(address):
        manager.connect()
        return {name: getattr(manager, name)() for name in EXPOSED}
