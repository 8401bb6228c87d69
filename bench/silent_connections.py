#!/usr/bin/env python
"""Silent connections against the master's listener: are real workers still served?

    python bench/silent_connections.py [--silent 1000] [--spread] [--pages 300]
                                       [--rounds 2] [--nofile N] [--json out.json]

Each round runs two crawls of the same generated site (crawler.sitegen, `--pages` books, on
127.0.0.1), alternating: one quiet, one under a flood. A crawl is a real master
(`python -m crawler.master --workers 0`) and, once it listens, one real worker
(`python -m crawler.worker -c 8`). In the flood, `--silent` TCP connections are opened to the
master before the worker starts and kept open while it crawls: they never answer the
challenge, and each one the master closes is opened again at once (a persistent slowloris).
They come from 127.0.0.2 (one address: LISTENER_MAX_PER_ADDRESS applies), or with
`--spread` from as many addresses 127.1.x.y (one each: only LISTENER_CHALLENGE_TIMEOUT
frees them). `--nofile N` starts the master with RLIMIT_NOFILE N (the issue's `ulimit -n`).

Reported per crawl: the worker's wall time from start to the master's exit (null: not
over within `--timeout`), whether every
page was written once, the master's threads and open descriptors sampled with the flood on
(just before the worker starts), and how many silent connections the master closed.
Everything runs on loopback and ends the processes it started, by pid.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.link import keyfile  # noqa: E402
from crawler.sitegen import Site, SiteServer  # noqa: E402


class Flood:
    """`count` silent connections to address, reopened as the master closes them."""

    def __init__(self, address: tuple[str, int], count: int, spread: bool) -> None:
        self.address, self.count, self.spread = address, count, spread
        self.selector = selectors.DefaultSelector()
        self.closed_by_master = self.failed_opens = 0
        self.stopping = False
        for i in range(count):
            self._open(i)
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _source(self, i: int) -> str:
        return f"127.1.{i // 250}.{i % 250 + 1}" if self.spread else "127.0.0.2"

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5,
                                            source_address=(self._source(i), 0))
        except OSError:
            self.failed_opens += 1
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, i)

    def _watch(self) -> None:
        while not self.stopping:
            for key, _ in self.selector.select(0.1):
                try:
                    data = key.fileobj.recv(4096)  # the challenge: read, never answered
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()
                    self.closed_by_master += 1
                    if not self.stopping:
                        self._open(key.data)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def _proc_counts(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        threads = int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def crawl(workdir: str, site: SiteServer, flood: int, spread: bool, nofile: int | None,
          timeout: float) -> dict:
    run = tempfile.mkdtemp(dir=workdir)
    seeds, key, out = (os.path.join(run, n) for n in ("seeds.txt", "key", "items.jsonl"))
    with open(seeds, "w") as f:
        f.write(site.url + "\n")
    keyfile.create(key)
    env = dict(os.environ, PYTHONPATH=REPO)
    limit = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))) \
        if nofile else None
    master = subprocess.Popen(
        [sys.executable, "-m", "crawler.master", seeds, "--workers", "0", "--bind",
         "127.0.0.1:0", "--authkey-file", key, "-o", out, "--status", "off",
         "-s", "LOG_LEVEL=WARNING", "-s", "ROBOTSTXT_OBEY=false"],
        cwd=run, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=limit)
    worker = silent = None
    try:
        line = master.stdout.readline()
        host, port = re.search(r"listening on (\S+?):(\d+);", line).groups()
        silent = Flood((host, int(port)), flood, spread) if flood else None
        if silent:
            time.sleep(1.0)  # let the master accept what it will
        threads, fds = _proc_counts(master.pid)
        started = time.monotonic()
        worker = subprocess.Popen([sys.executable, "-m", "crawler.worker", f"{host}:{port}",
                                   "--authkey-file", key, "-c", "8", "--max-wait", str(timeout),
                                   "--log-level", "WARNING"], cwd=run, env=env,
                                  stderr=subprocess.DEVNULL)
        try:
            master.wait(timeout)
            seconds = round(time.monotonic() - started, 2)
            worker.wait(30)
        except subprocess.TimeoutExpired:
            seconds = None  # not served within the timeout
    finally:
        if silent:
            silent.close()
        for proc in (worker, master):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    with open(out) if os.path.exists(out) else open(os.devnull) as f:
        urls = [json.loads(line)["url"] for line in f]
    expected = len(site.site.paths())
    return {"flood": flood, "seconds": seconds, "pages": len(set(urls)),
            "complete": len(urls) == len(set(urls)) == expected, "master_threads": threads,
            "master_fds": fds, "closed_by_master": silent.closed_by_master if silent else 0,
            "failed_opens": silent.failed_opens if silent else 0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--silent", type=int, default=1000, help="silent connections in a flood")
    p.add_argument("--spread", action="store_true", help="one source address each")
    p.add_argument("--pages", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--nofile", type=int, help="the master's RLIMIT_NOFILE")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a crawl may take")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="crawler-silent-")
    site = SiteServer(Site(pages=args.pages)).start()
    results = []
    try:
        for _ in range(args.rounds):
            for flood in (0, args.silent):
                result = crawl(workdir, site, flood, args.spread, args.nofile, args.timeout)
                results.append(result)
                print(json.dumps(result), flush=True)
    finally:
        site.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1 and 5 min)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0 if all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
