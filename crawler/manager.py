"""The only module that touches multiprocessing.managers.

The master registers its queue objects on a BaseManager server running in its
own threads; workers connect with proxies. Every connection sets TCP_NODELAY
(connect ~44 ms -> ~3 ms) and client calls carry a deadline (SO_RCVTIMEO), so a
hung master makes calls fail with OSError instead of hanging forever.
"""
from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from multiprocessing import connection, managers
from typing import Any, Callable

from .errors import UsageError

log = logging.getLogger(__name__)
SERIALIZER = "crawler"
_call_timeout = 10.0
REFUSED_REPORT_EVERY = 60.0  # seconds between two log lines about refused connections
_peer = threading.local()  # on each server thread: the address of the client it serves

# What each registered object exposes to workers.
EXPOSED = {
    "url_queue": ("lease", "exchange"),
    "result_queue": ("put",),
    "seen": ("__contains__", "__len__", "get", "unseen"),
    "control": ("hello", "bye", "status"),
}
_PROXIES = {name: managers.MakeProxyType(f"{name}_proxy", methods)
            for name, methods in EXPOSED.items()}


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


def _tune(sock: socket.socket, timeout: float | None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if timeout:
        tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


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


def listening(address: tuple[str, int]) -> bool:
    """True when something accepts TCP connections at address."""
    try:
        with socket.create_connection(address, timeout=_call_timeout):
            return True
    except OSError:
        return False


class _Refusals:
    """Logs connections refused for a wrong authkey: the first at once, then at most one
    line every REFUSED_REPORT_EVERY seconds, so a scan cannot flood the log."""

    def __init__(self) -> None:
        self.lock, self.next_report, self.unreported = threading.Lock(), 0.0, 0

    def note(self, peer: Any) -> None:
        now = time.monotonic()
        with self.lock:
            if now < self.next_report:
                self.unreported += 1
                return
            more, self.unreported = self.unreported, 0
            self.next_report = now + REFUSED_REPORT_EVERY
        peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else peer
        log.warning("refused a connection from %s: wrong authkey%s", peer,
                    f" ({more} more since the last report)" if more else "")


_refusals = _Refusals()


class _ServerConnection(connection.Connection):
    """The master's end of a connection. The server answers a failed authkey challenge by
    sending the AuthenticationError's traceback: that send is where a refusal shows."""

    peer: Any = None

    def send(self, obj: Any) -> None:
        if (isinstance(obj, tuple) and obj[:1] == ("#TRACEBACK",)
                and "AuthenticationError" in str(obj[1:2])):
            _refusals.note(self.peer)
        super().send(obj)


class _Listener(connection.Listener):
    def accept(self) -> connection.Connection:
        accepted = super().accept()
        conn = _ServerConnection(os.dup(accepted.fileno()))
        accepted.close()
        conn.peer = self.last_accepted
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            _tune(sock, None)
        return conn


class _Server(managers.Server):
    def accept_connection(self, c: connection.Connection, name: str) -> None:
        _peer.address = getattr(c, "peer", None)  # this thread serves only this connection
        super().accept_connection(c, name)


def peer_address() -> tuple[str, int] | None:
    """The client address of the call being served on this thread (None elsewhere)."""
    return getattr(_peer, "address", None)


def _client(address: tuple[str, int], authkey: bytes | None = None) -> connection.Connection:
    sock = socket.create_connection(address, timeout=_call_timeout)
    sock.settimeout(None)
    _tune(sock, _call_timeout)
    conn = connection.Connection(sock.detach())
    if authkey is not None:
        connection.answer_challenge(conn, authkey)
        connection.deliver_challenge(conn, authkey)
    return conn


managers.listener_client[SERIALIZER] = (_Listener, _client)


class _ClientManager(managers.BaseManager):
    pass


for _name in EXPOSED:
    _ClientManager.register(_name, proxytype=_PROXIES[_name])


def serve(objects: dict[str, Any], address: tuple[str, int], authkey: bytes) -> tuple[str, int]:
    """Serve the master's objects from daemon threads; return the bound address."""
    server_manager = type("_ServerManager", (managers.BaseManager,), {"_registry": {}})
    for name, obj in objects.items():
        server_manager.register(name, callable=_constant(obj), proxytype=_PROXIES[name],
                                exposed=EXPOSED[name])
    try:  # checked before anything started (check_listen), but the port may be gone since
        # _Server, not get_server(), which would build a plain managers.Server
        server = _Server(server_manager._registry, address, authkey, SERIALIZER)
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
    """Connect to a master; return its proxies by name. Raises OSError/EOFError and
    multiprocessing.AuthenticationError on failure."""
    _forget_connections(address)
    manager = _ClientManager(address=address, authkey=authkey, serializer=SERIALIZER)
    manager.connect()
    return {name: getattr(manager, name)() for name in EXPOSED}
