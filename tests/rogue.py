"""Hostile peers for the trust tests: a raw client that speaks the manager protocol by hand
(frames, the authkey challenge, any pickle it likes), and a relay between a worker and its
master that replaces one reply with bytes of its choosing (what anyone on a plain TCP path
can do, key or no key)."""
from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
from multiprocessing import connection
from pathlib import Path


class RunsCode:
    """Unpickling this runs `touch marker`: what a pickle from a peer can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def frame(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the peer sends until it closes or resets (TimeoutError if it does not)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # it closed with our garbage unread
            return data
        if not chunk:
            return data
        data += chunk


class RawPeer:
    """One connection to a master, by hand. `source`: the local address to connect from."""

    def __init__(self, address: tuple[str, int], source: str = "127.0.0.1",
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout,
                                             source_address=(source, 0))
        self.sock.settimeout(None)  # blocking, for the Connection; reads bounded by the kernel
        deadline = struct.pack("ll", int(timeout), 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, deadline)
        self.conn = connection.Connection(os.dup(self.sock.fileno()))

    def authenticate(self, key: bytes) -> None:
        connection.answer_challenge(self.conn, key)
        connection.deliver_challenge(self.conn, key)

    def send_pickle(self, obj: object) -> None:
        self.conn.send_bytes(pickle.dumps(obj))

    def call(self, request: tuple) -> tuple:
        """Send one request; the (kind, value) reply, unpickled by pickle itself (the
        master here is the real one)."""
        self.conn.send(request)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.close()
        self.sock.close()


class Relay:
    """Forwards a worker's connections to the master; replaces the master's reply to the
    first request whose pickle contains `trigger` with `payload` (a pickle), once."""

    def __init__(self, master: tuple[str, int], trigger: bytes, payload: bytes) -> None:
        self.master, self.trigger, self.payload = master, trigger, payload
        self.injected = threading.Event()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.master)
            armed = threading.Event()  # the client sent the trigger: replace the next reply
            threading.Thread(target=self._pipe, args=(client, server, armed, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, armed, True),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, armed: threading.Event,
              replies: bool) -> None:
        try:
            while True:
                payload = _read_frame(src)
                if payload is None:
                    break
                if not replies and self.trigger in payload and not self.injected.is_set():
                    with self.lock:
                        if not self.injected.is_set():
                            armed.set()
                if replies and armed.is_set() and not self.injected.is_set():
                    payload = self.payload
                    self.injected.set()
                dst.sendall(frame(payload))
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, 4)
    if header is None:
        return None
    return _read_exact(sock, struct.unpack("!i", header)[0])


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
