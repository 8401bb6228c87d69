"""A broad-crawl site for benchmarks: H hosts on distinct loopback addresses (127.1.x.y, one
port for all), P pages each linking within their host, every response delayed by a
log-normal latency; optionally over TLS. Served by event-loop (asyncio) processes forked
from this one, all accepting on every host's socket, so the server is not the bottleneck;
it counts the requests it holds (received, not yet answered) in shared memory, which is
"requests in flight" for any crawler.

Nothing here listens on anything but 127.0.0.0/8.
"""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import random
import signal
import socket
import ssl
import sys
import time

from measure import stop_forked  # bench/ is on the path of the scripts that use this

_HEAD = ("HTTP/1.1 200 OK\r\nServer: broad\r\nContent-Type: text/html; charset=utf-8\r\n"
         "Content-Length: {}\r\n\r\n")
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class BroadSite:
    """The pages of one host (every host serves the same ones: links are relative)."""

    def __init__(self, hosts: int, pages: int, links: int = 10, size_kb: float = 8.0,
                 seed: int = 1) -> None:
        if not 1 <= hosts <= 250 * 250:
            raise SystemExit("error: --hosts must be 1..62500")
        self.hosts, self.pages = hosts, pages
        self.ips = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(hosts)]
        rng = random.Random(seed)
        self.responses: dict[bytes, bytes] = {}
        for n in range(pages):
            # page n links to n+1 (so every page is reachable) and to random others
            targets = {(n + 1) % pages, *(rng.randrange(pages) for _ in range(links - 1))}
            body = self._body(n, sorted(targets), size_kb)
            self.responses[self.path(n).encode()] = _HEAD.format(len(body)).encode() + body

    @staticmethod
    def path(n: int) -> str:
        return "/" if n == 0 else f"/p/{n}.html"

    def _body(self, n: int, targets: list[int], size_kb: float) -> bytes:
        links = "".join(f'<li><a href="{self.path(t)}">page {t}</a></li>' for t in targets)
        head = f"<html><head><title>Page {n}</title></head><body><ul>{links}</ul><p>"
        filler = max(0, int(size_kb * 1024) - len(head) - 20)
        return (head + ("lorem ipsum " * (filler // 12 + 1))[:filler] + "</p></body></html>"
                ).encode()

    def urls(self, scheme: str, port: int) -> set[str]:
        return {f"{scheme}://{ip}:{port}{self.path(n)}" for ip in self.ips
                for n in range(self.pages)}


class BroadServer:
    """The site served by `processes` forked asyncio processes; latency log-normal with
    the given median (seconds) and sigma; `tls`: a server SSLContext, or None."""

    def __init__(self, site: BroadSite, median: float, sigma: float, processes: int = 2,
                 tls: ssl.SSLContext | None = None) -> None:
        self.site, self.processes = site, processes
        self.port, socks = _bind_all(site.ips)
        # per process: requests held now, and requests answered (written by that process)
        self.counters = multiprocessing.RawArray("q", 2 * processes)
        self.children: list[int] = []
        sys.stdout.flush()
        sys.stderr.flush()
        for index in range(processes):
            pid = os.fork()
            if pid == 0:
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    _serve(socks, site.responses, median, sigma, tls, self.counters, index)
                finally:
                    os._exit(0)
            self.children.append(pid)
        for s in socks:
            s.close()
        self.description = (f"asyncio, {processes} processes, {site.hosts} hosts x "
                            f"{site.pages} pages, latency log-normal median "
                            f"{median * 1000:g} ms sigma {sigma:g}{', TLS' if tls else ''}")
        _wait_listening(site.ips[0], self.port)

    @property
    def pids(self) -> list[int]:
        return list(self.children)

    def in_flight(self) -> int:
        return sum(self.counters[2 * i] for i in range(self.processes))

    def answered(self) -> int:
        return sum(self.counters[2 * i + 1] for i in range(self.processes))

    def close(self) -> None:
        stop_forked(self.children)
        self.children = []


def _bind_all(ips: list[str]) -> tuple[int, list[socket.socket]]:
    """One listening socket per address, all on one port (tried until one is free on all)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((ips[0], 0))
            port = probe.getsockname()[1]
        socks: list[socket.socket] = []
        try:
            for ip in ips:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((ip, port))
                s.listen(1024)
                s.setblocking(False)
            return port, socks
        except OSError:
            for s in socks:
                s.close()
    raise SystemExit("error: no port free on every host address")


def _wait_listening(ip: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"error: the broad site did not come up on {ip}:{port}")


def _serve(socks, responses, median, sigma, tls, counters, index) -> None:
    mu = math.log(median) if median > 0 else None
    held, answered = 2 * index, 2 * index + 1

    class Conn(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf, self.last = transport, b"", 0.0
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                          socket.TCP_NODELAY, 1)

        def data_received(self, data):
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                parts = head.split(b"\r\n", 1)[0].split(b" ")
                path = parts[1].split(b"?", 1)[0] if len(parts) > 1 else b"/"
                delay = random.lognormvariate(mu, sigma) if mu is not None else 0.0
                now = loop.time()
                self.last = max(now + delay, self.last)   # answers keep their order
                counters[held] += 1
                loop.call_at(self.last, self.answer, responses.get(path, _NOT_FOUND))

        def answer(self, data):
            counters[held] -= 1
            counters[answered] += 1
            if not self.transport.is_closing():
                self.transport.write(data)

    loop = asyncio.new_event_loop()

    async def main():
        for s in socks:
            await loop.create_server(Conn, sock=s, ssl=tls, backlog=1024)
        await asyncio.Event().wait()

    loop.run_until_complete(main())
