"""TLS for the transport: which certificates are trusted, and connections that resume sessions.

Trust (TLS_VERIFY, TLS_CA_BUNDLE, the environment) is what requests calls `verify`: False
(check nothing), True (certifi's bundle), or the path of a PEM file or of a folder of
certificates (hashed names, as OpenSSL reads it). When TLS_CA_BUNDLE is unset,
REQUESTS_CA_BUNDLE and then SSL_CERT_FILE name the bundle. The environment is read where the
fetcher runs, so on each worker host: a path on the master's host need not exist on a
worker's.

Connections (`Tls.wrap`): TLS 1.2 or later, SNI for host names, ALPN offering http/1.1
only, the certificate checked against the host unless verification is off, and the session
of the last connection to the same host and port offered for resumption (an abbreviated
handshake: no certificate chain sent or checked again).
"""
from __future__ import annotations

import os
import socket
import ssl
from functools import cached_property
from typing import TYPE_CHECKING, Mapping

import certifi

from ..errors import UsageError

if TYPE_CHECKING:
    from .deadline import Deadline

ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # tried in this order
MAX_SESSIONS = 1024  # hosts whose last TLS session a fetcher keeps (each holds a few KB)


def verify_value(verify: bool, bundle: str | None, env: Mapping[str, str]) -> bool | str:
    """requests' `verify` for these settings and environment; UsageError when the bundle
    named cannot be used (so a worker fails at configure time, not on every page)."""
    if not verify:
        return False
    source = "setting TLS_CA_BUNDLE"
    if not bundle:
        source, bundle = next(((f"${name}", env[name]) for name in ENV_VARS if env.get(name)),
                              (source, None))
    if bundle is None:
        return True
    problem = bundle_problem(bundle)
    if problem:
        raise UsageError(f"{source}={bundle!r}: {problem}")
    return bundle


def bundle_problem(path: str) -> str | None:
    """Why `path` cannot serve as a CA bundle (missing, unreadable, no certificate in it),
    or None when it can."""
    try:
        if os.path.isdir(path):
            os.listdir(path)  # certificates in a folder are read when needed
        else:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        return f"not a PEM file of CA certificates ({exc.reason or exc})"
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None


class Tls:
    """One fetcher's TLS: its context (made on first use) and the sessions to resume, by
    (host, port), the MAX_SESSIONS last used. Safe to share between threads."""

    def __init__(self, verify: bool | str) -> None:
        self.verify = verify
        self.sessions: dict[tuple[str, int], ssl.SSLSession] = {}

    @cached_property
    def context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        if self.verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.verify is True:
            context.load_verify_locations(cafile=certifi.where())  # requests' default
        elif os.path.isdir(self.verify):
            context.load_verify_locations(capath=self.verify)
        else:
            context.load_verify_locations(cafile=self.verify)
        return context

    def wrap(self, sock: socket.socket, host: str, port: int,
             deadline: "Deadline") -> ssl.SSLSocket:
        """TLS over a connected socket to host: the handshake done within the deadline."""
        sock.settimeout(deadline.remaining("before the TLS handshake"))
        name = host.rstrip(".")  # certificates name hosts without the root's dot
        return self.context.wrap_socket(sock, server_hostname=name,
                                        session=self.sessions.get((host, port)))

    def keep_session(self, sock: ssl.SSLSocket, host: str, port: int) -> None:
        """Remember sock's session for the next connection to host (call it once a response
        has arrived: TLS 1.3 sends its tickets after the handshake)."""
        session, sessions = sock.session, self.sessions
        if session is None:
            return
        sessions.pop((host, port), None)  # to the end: the oldest are dropped first
        sessions[(host, port)] = session
        while len(sessions) > MAX_SESSIONS:
            try:
                del sessions[next(iter(sessions))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break
