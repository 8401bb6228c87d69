#!/usr/bin/env python
"""Crawl benchmark: this project against Scrapy, on a generated site served on 127.0.0.1.

    python bench/run.py [--pages 5000] [--links 20] [--size-kb 8] [--workers 2]
                        [--scrapy/--no-scrapy] [--json out.json] [--smoke] [--tls]

Serves crawler.sitegen.Site(pages, links, size_kb) with nginx when it is installed (static
files in a temporary folder, a generated config, 127.0.0.1 on a free port, run as a
non-daemon child and killed at the end), else with a pre-forked Python server (several
processes accepting on one shared socket, pre-rendered responses, HTTP/1.1 keep-alive,
TCP_NODELAY). Then crawls it with `python -m crawler.master` and, when Scrapy can be found,
with an equivalent Scrapy spider (`scrapy runspider`). See bench/README.md for what each
number means. `--smoke` is a tiny run for CI: exit status 1 unless every page was written
exactly once. `--tls` serves the same site over HTTPS (nginx only), with a certificate from a
CA generated for the run (bench/pki.py), and passes that CA to our crawl as TLS_CA_BUNDLE.

Nothing here talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.sitegen import Site  # noqa: E402
from measure import (child_env, code_state, compile_code, find_scrapy_python,  # noqa: E402
                     free_port, run_measured, stop_forked)
from nginx import Nginx, wait_http  # noqa: E402
from pki import Pki  # noqa: E402

# ---------------------------------------------------------------------------------------------
# The site and its servers

def render_site(site: Site) -> dict[str, tuple[int, str, bytes]]:
    """Every reachable path (plus /catalogue/page-1.html) rendered once."""
    paths = sorted(site.paths() | {"/catalogue/page-1.html"})
    return {p: site.render(p) for p in paths}


class NginxServer(Nginx):
    """nginx serving the site as static files from a temporary folder."""

    def __init__(self, pages: dict[str, tuple[int, str, bytes]], workdir: str,
                 processes: int = 2, tls: Pki | None = None) -> None:
        folder = os.path.join(workdir, "nginx")
        root = os.path.join(folder, "root")
        for path, (_, _, body) in pages.items():
            rel = "index.html" if path == "/" else path.lstrip("/")
            target = os.path.join(root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(body)
        # nginx workers run as an unprivileged user when started by root: let them read.
        for d in (workdir, folder, *[d for d, _, _ in os.walk(root)]):
            os.chmod(d, 0o755)
        self.port = free_port()
        super().__init__(folder, f"""
    types {{ text/html html; }}
    default_type application/octet-stream;
    charset utf-8;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=100000 inactive=120s;
    server {{
        listen 127.0.0.1:{self.port}{" ssl" if tls else ""};
        {tls.nginx_directives() if tls else ""}
        root {root};
        index index.html;
        location / {{ try_files $uri $uri/ =404; }}
    }}""", processes)
        if tls is not None:
            self.description = self.description[:-1] + ", TLS)"
        self.wait("127.0.0.1", self.port, context=tls.client_context() if tls else None)


class PythonServer:
    """Pre-forked processes sharing one listening socket; pre-rendered responses;
    HTTP/1.1 keep-alive with pipelining; TCP_NODELAY on every connection."""

    def __init__(self, pages: dict[str, tuple[int, str, bytes]], processes: int = 2) -> None:
        responses = {path.encode(): _http_response(status, ctype, body)
                     for path, (status, ctype, body) in pages.items()}
        not_found = _http_response(404, "text/html", b"<html><title>Not found</title></html>")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.children: list[int] = []
        sys.stdout.flush()
        sys.stderr.flush()
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:   # child: serve until killed
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    _serve_forever(self.sock, responses, not_found)
                finally:
                    os._exit(0)
            self.children.append(pid)
        self.sock.close()   # the children hold it
        self.description = f"python ({processes} processes, pre-rendered, keep-alive)"
        wait_http(self.port, 10.0)

    @property
    def pids(self) -> list[int]:
        return list(self.children)

    def close(self) -> None:
        stop_forked(self.children)
        self.children = []


def _http_response(status: int, ctype: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}.get(status, "OK")
    head = (f"HTTP/1.1 {status} {reason}\r\nServer: bench\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "close_after")

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.inbuf, self.outbuf, self.close_after = sock, b"", b"", False


def _serve_forever(listener: socket.socket, responses: dict[bytes, bytes],
                   not_found: bytes) -> None:
    sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)

    def drop(conn: _Conn) -> None:
        sel.unregister(conn.sock)
        conn.sock.close()

    def send(conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            drop(conn)
            return
        conn.outbuf = conn.outbuf[sent:]
        if conn.outbuf:
            sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        elif conn.close_after:
            drop(conn)
        else:
            sel.modify(conn.sock, selectors.EVENT_READ, conn)

    while True:
        for key, events in sel.select():
            conn = key.data
            if conn is None:
                try:
                    client, _ = listener.accept()
                except (BlockingIOError, InterruptedError):
                    continue
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.setblocking(False)
                sel.register(client, selectors.EVENT_READ, _Conn(client))
                continue
            if events & selectors.EVENT_WRITE and conn.outbuf:
                send(conn)
                continue
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                drop(conn)
                continue
            buf, out = conn.inbuf + data, []
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buf = buf[:end], buf[end + 4:]
                line, _, rest = head.partition(b"\r\n")
                parts = line.split(b" ")
                target = parts[1] if len(parts) > 1 else b"/"
                if target.startswith(b"http://"):
                    target = b"/" + target.split(b"/", 3)[-1] if target.count(b"/") > 2 else b"/"
                path = target.split(b"?", 1)[0]
                out.append(responses.get(path, not_found))
                lowered = rest.lower()
                if b"connection: close" in lowered or parts[-1] == b"HTTP/1.0" and \
                        b"connection: keep-alive" not in lowered:
                    conn.close_after = True
                    buf = b""
                    break
            conn.inbuf = buf
            if out:
                conn.outbuf += b"".join(out)
                send(conn)


def start_server(kind: str, pages: dict, workdir: str, processes: int,
                 tls: Pki | None = None):
    if tls is not None and kind == "python":
        raise SystemExit("error: --tls needs nginx (--server nginx or auto)")
    if kind in ("auto", "nginx"):
        try:
            return NginxServer(pages, workdir, processes, tls)
        except FileNotFoundError:
            if kind == "nginx" or tls is not None:
                raise SystemExit("error: --server nginx, but nginx is not installed "
                                 "(apt-get install -y nginx)")
            print("nginx not found: using the Python server (apt-get install -y nginx for "
                  "nginx)", flush=True)
    return PythonServer(pages, processes)



def check_items(path: str, expected: set[str]) -> dict:
    """Every expected URL written exactly once, with status 200?"""
    counts: collections.Counter = collections.Counter()
    statuses: collections.Counter = collections.Counter()
    lines = 0
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                lines += 1
                item = json.loads(line)
                counts[item.get("url")] += 1
                statuses[item.get("status")] += 1
    missing = sorted(expected - counts.keys())
    extra = sorted(set(counts) - expected)
    dups = {u: c for u, c in counts.items() if c > 1}
    return {"items": lines, "distinct_urls": len(counts), "expected": len(expected),
            "missing": len(missing), "extra": len(extra), "duplicated": len(dups),
            "statuses": {str(k): v for k, v in statuses.items()},
            "examples": {"missing": missing[:5], "extra": extra[:5],
                         "duplicated": sorted(dups)[:5]},
            "ok": not missing and not extra and not dups and lines == len(expected)}


# ---------------------------------------------------------------------------------------------
# The two crawlers

def crawl_ours(base: str, expected: set[str], workdir: str, args, profile_dir=None,
               py_spy=None) -> dict:
    seeds = os.path.join(workdir, "seeds.txt")
    with open(seeds, "w") as f:
        f.write(base + "\n")
    out = os.path.join(workdir, "crawler-items.jsonl")
    if os.path.exists(out):
        os.remove(out)
    argv = [*shlex.split(args.wrap or ""), sys.executable, "-m", "crawler.master", seeds,
            "--workers", str(args.workers),
            "-o", out, "-s", "LOG_LEVEL=WARNING", "-s", "ROBOTSTXT_OBEY=false",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}", *args.crawler_set]
    env = child_env()
    compile_code(args.code or REPO)
    env["PYTHONPATH"] = (args.code or REPO) + (os.pathsep + env["PYTHONPATH"]
                                               if env.get("PYTHONPATH") else "")
    # The run folder has no settings.py, so the project's settings.py does not apply.
    result = run_measured("crawler", argv, workdir, env, args.timeout, args._server_pids,
                          profile_dir, py_spy)
    result["check"] = check_items(out, expected)
    result["command"] = " ".join(argv)
    for line in result["stdout"].splitlines():
        if line.strip().endswith("pages/s"):
            result["self_reported"] = line.strip()
    return result


SCRAPY_SPIDER = '''
import scrapy

class BenchSpider(scrapy.Spider):
    """The generic spider's equivalent: follow every link, one item per page."""
    name = "bench"
    link_xpath = "//a/@href | //area/@href | //link[@rel='next']/@href"
    custom_settings = {
        "LOG_LEVEL": "WARNING",
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": %(per_domain)d,
        "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0,
        "TELNETCONSOLE_ENABLED": False,
        "HTTPPROXY_ENABLED": False,
    }

    def __init__(self, start=None, **kwargs):
        super().__init__(**kwargs)
        self.start_url = start
        self.allowed_domains = ["127.0.0.1"]

    # The start request is filtered like any link (start_urls would bypass the dupefilter
    # and "/" would be fetched twice): start() for Scrapy >= 2.13, start_requests() before.
    async def start(self):
        yield scrapy.Request(self.start_url)

    def start_requests(self):
        yield scrapy.Request(self.start_url)

    def parse(self, response):
        title = response.xpath("//title/text()").get()
        yield {"url": response.url, "status": response.status,
               "title": title.strip() if title else None,
               "depth": response.meta.get("depth", 0)}
        for href in response.xpath(self.link_xpath).getall():
            yield response.follow(href, callback=self.parse)
'''


def crawl_scrapy(python: str, base: str, expected: set[str], workdir: str, args) -> dict:
    spider = os.path.join(workdir, "bench_spider.py")
    with open(spider, "w") as f:
        f.write(SCRAPY_SPIDER % {"per_domain": args.per_domain})
    out = os.path.join(workdir, "scrapy-items.jsonl")
    argv = [python, "-m", "scrapy", "runspider", spider, "-O", out, "-a", f"start={base}",
            "-L", "WARNING"]
    result = run_measured("scrapy", argv, workdir, child_env(), args.timeout,
                          args._server_pids)
    result["check"] = check_items(out, expected)
    result["command"] = " ".join(argv)
    version = subprocess.run([python, "-c", "import scrapy; print(scrapy.__version__)"],
                             capture_output=True, text=True, env=child_env())
    result["version"] = version.stdout.strip()
    return result


# ---------------------------------------------------------------------------------------------
# Reporting

def summarize(result: dict) -> dict:
    pages = result["check"]["items"]
    return {
        "pages": pages, "wall_s": result["wall_s"],
        "pages_per_s": round(pages / result["wall_s"], 1) if result["wall_s"] else 0.0,
        "cpu_s": result["cpu_s"],
        "cpu_ms_per_page": round(1000 * result["cpu_s"] / pages, 3) if pages else None,
        "peak_rss_top_mb": result["top_hwm_mb"],
        "peak_rss_children_mb": result["children_hwm_mb"],
        "ru_maxrss_mb": result["ru_maxrss_mb"],
    }


def print_table(rows: dict[str, dict]) -> None:
    head = (f"{'':22} {'pages':>6} {'wall s':>7} {'pages/s':>8} {'CPU s':>7} "
            f"{'CPU ms/page':>11}  peak RSS MB (main process / child processes)")
    print(head)
    print("-" * len(head))
    for name, s in rows.items():
        kids = ", ".join(f"{x:.0f}" for x in s["peak_rss_children_mb"]) or "-"
        print(f"{name:22} {s['pages']:>6} {s['wall_s']:>7.2f} {s['pages_per_s']:>8.1f} "
              f"{s['cpu_s']:>7.2f} {s['cpu_ms_per_page'] or 0:>11.3f}  "
              f"{s['peak_rss_top_mb']:.0f} / {kids}")


def print_profile_summary(folder: str, top: int = 25) -> dict:
    """Self and inclusive sample shares per function from py-spy raw (collapsed) stacks."""
    report = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".txt"):
            continue
        selfc: collections.Counter = collections.Counter()
        incl: collections.Counter = collections.Counter()
        total = 0
        with open(os.path.join(folder, name)) as f:
            for line in f:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not count.isdigit():
                    continue
                n = int(count)
                frames = [fr for fr in stack.split(";") if fr]
                if not frames:
                    continue
                total += n
                selfc[frames[-1]] += n
                for fr in set(frames):
                    incl[fr] += n
        print(f"\n== {name}: {total} samples (200 Hz, non-idle threads)")
        print(f"{'self %':>7} {'incl %':>7}  function")
        for fr, n in selfc.most_common(top):
            print(f"{100 * n / total:7.1f} {100 * incl[fr] / total:7.1f}  {fr}")
        print("  -- largest inclusive --")
        for fr, n in incl.most_common(top):
            print(f"{100 * selfc[fr] / total:7.1f} {100 * n / total:7.1f}  {fr}")
        report[name] = {"samples": total,
                        "self": [(fr, n) for fr, n in selfc.most_common(top)],
                        "inclusive": [(fr, n) for fr, n in incl.most_common(top)]}
    return report


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=5000, help="books on the site (5000)")
    p.add_argument("--links", type=int, default=20, help="related links per book (20)")
    p.add_argument("--size-kb", type=float, default=8.0, help="page size in KB (8)")
    p.add_argument("--workers", type=int, default=2, help="our local worker processes (2)")
    p.add_argument("--per-domain", type=int, default=16,
                   help="CONCURRENT_REQUESTS_PER_DOMAIN for both crawlers (16)")
    p.add_argument("--scrapy", action=argparse.BooleanOptionalAction, default=None,
                   help="run Scrapy too (default: when it can be found)")
    p.add_argument("--scrapy-python", help="a Python that can import scrapy "
                   "(or $BENCH_SCRAPY_PYTHON)")
    p.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    p.add_argument("--server-processes", type=int, default=2)
    p.add_argument("--tls", action="store_true",
                   help="serve the site over HTTPS (nginx) with a CA made for the run, "
                        "passed to our crawl as TLS_CA_BUNDLE")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per crawl")
    p.add_argument("--wrap", metavar="CMD", help="run our crawl under this command (e.g. "
                   "'valgrind --tool=callgrind --trace-children=yes': instructions per page)")
    p.add_argument("--code", metavar="DIR", help="crawl with the crawler package of this "
                   "checkout (default: this one): A/B against another")
    p.add_argument("--repeat", type=int, default=1,
                   help="crawl N times with each crawler and report the median run by "
                        "pages/s (1)")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--smoke", action="store_true",
                   help="40 pages, Python server, no Scrapy; exit 1 unless every page "
                        "was written exactly once")
    p.add_argument("--profile", metavar="DIR",
                   help="record our master and workers with py-spy into DIR (slower run)")
    p.add_argument("--crawler-set", action="append", default=[], metavar="-s NAME=VALUE",
                   help="extra setting for our crawl, e.g. --crawler-set=-sBATCH_SIZE=128")
    args = p.parse_args(argv)
    if args.smoke:
        args.pages, args.scrapy = 40, False
        args.server = args.server if args.tls else "python"
        args.timeout, args.repeat = min(args.timeout, 60.0), 1
    args.crawler_set = [x for s in args.crawler_set
                        for x in (["-s", s[2:]] if s.startswith("-s") else ["-s", s])]

    py_spy = None
    if args.profile:
        py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable),
                                                        "py-spy")
        if not os.path.exists(py_spy):
            raise SystemExit("error: --profile needs py-spy (pip install py-spy)")
        os.makedirs(args.profile, exist_ok=True)

    scrapy_python = None
    if args.scrapy is not False:
        scrapy_python = find_scrapy_python(args.scrapy_python)
        if scrapy_python is None:
            msg = ("Scrapy not found (pip install scrapy, or give --scrapy-python / "
                   "$BENCH_SCRAPY_PYTHON)")
            if args.scrapy:
                raise SystemExit("error: " + msg)
            print(msg + ": measuring this project only", flush=True)

    site = Site(args.pages, args.links, args.size_kb)
    t = time.perf_counter()
    pages = render_site(site)
    render_s = time.perf_counter() - t
    workdir = tempfile.mkdtemp(prefix="crawler-bench-")
    server = None
    results: dict = {}
    status = 0
    try:
        tls = Pki(os.path.join(workdir, "pki")) if args.tls else None
        if tls is not None:
            args.crawler_set += ["-s", f"TLS_CA_BUNDLE={tls.ca}"]
        server = start_server(args.server, pages, workdir, args.server_processes, tls)
        args._server_pids = server.pids
        base = f"{'https' if tls else 'http'}://127.0.0.1:{server.port}/"
        expected = {base + path.lstrip("/") for path in site.paths()}
        body_bytes = sum(len(pages[p][2]) for p in site.paths())
        print(f"site: {len(expected)} pages ({args.pages} books x {args.links} links, "
              f"~{args.size_kb:g} KB each, {body_bytes / 2**20:.1f} MB; rendered in "
              f"{render_s:.1f} s)", flush=True)
        print(f"server: {server.description} at {base}", flush=True)
        results = {
            "config": {"pages": args.pages, "links": args.links, "size_kb": args.size_kb,
                       "site_pages": len(expected), "workers": args.workers,
                       "per_domain": args.per_domain, "smoke": args.smoke, "tls": args.tls,
                       "extra_settings": args.crawler_set},
            "server": server.description,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "code": code_state(),
            "runs": {},
        }
        all_runs: dict[str, list[dict]] = {"crawler": []}
        for i in range(args.repeat):
            n = f" {i + 1}/{args.repeat}" if args.repeat > 1 else ""
            print(f"crawling with crawler ({args.workers} workers){n}...", flush=True)
            ours = crawl_ours(base, expected, workdir, args,
                              args.profile if i == 0 else None, py_spy)
            all_runs["crawler"].append(ours)
            check = ours["check"]
            if ours["exit_status"] != 0 or not check["ok"]:
                status = 1
                print(f"\n!!! CRAWLER MISMATCH: exit status {ours['exit_status']}, "
                      f"{check['items']} items for {check['expected']} pages: "
                      f"{check['missing']} missing, {check['duplicated']} duplicated, "
                      f"{check['extra']} unexpected; examples {check['examples']}\n"
                      f"stdout tail:\n{ours['stdout'][-1000:]}\n"
                      f"stderr tail:\n{ours['stderr'][-2000:]}\n", file=sys.stderr, flush=True)
            elif args.repeat > 1:
                print(f"  {summarize(ours)['pages_per_s']} pages/s", flush=True)
        for i in range(args.repeat if scrapy_python else 0):
            n = f" {i + 1}/{args.repeat}" if args.repeat > 1 else ""
            print(f"crawling with scrapy ({scrapy_python}){n}...", flush=True)
            theirs = crawl_scrapy(scrapy_python, base, expected, workdir, args)
            all_runs.setdefault("scrapy", []).append(theirs)
            if theirs["exit_status"] != 0 or not theirs["check"]["ok"]:
                c = theirs["check"]
                print(f"note: scrapy run: exit status {theirs['exit_status']}, {c['items']} "
                      f"items, {c['missing']} missing, {c['duplicated']} duplicated; "
                      f"stderr tail:\n{theirs['stderr'][-1500:]}", file=sys.stderr)
            elif args.repeat > 1:
                print(f"  {summarize(theirs)['pages_per_s']} pages/s", flush=True)
        for name, runs in all_runs.items():
            ranked = sorted(runs, key=lambda r: summarize(r)["pages_per_s"])
            results["runs"][name] = ranked[len(ranked) // 2]   # the median run
            if len(runs) > 1:
                results.setdefault("all_runs", {})[name] = [summarize(r) for r in runs]
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)

    rows = {}
    if "crawler" in results.get("runs", {}):
        rows[f"crawler ({args.workers} workers)"] = results["summary_crawler"] = \
            summarize(results["runs"]["crawler"])
    if "scrapy" in results.get("runs", {}):
        rows["scrapy"] = results["summary_scrapy"] = summarize(results["runs"]["scrapy"])
    print()
    if args.repeat > 1:
        print(f"median of {args.repeat} runs each (by pages/s); all runs: pages/s " + "; ".join(
            f"{name} {[x['pages_per_s'] for x in runs]}"
            for name, runs in results.get("all_runs", {}).items()))
    print_table(rows)
    if "summary_scrapy" in results and "summary_crawler" in results:
        a, b = results["summary_crawler"], results["summary_scrapy"]
        ratio = {"pages_per_s": round(a["pages_per_s"] / b["pages_per_s"], 3)
                 if b["pages_per_s"] else None,
                 "cpu_ms_per_page": round(a["cpu_ms_per_page"] / b["cpu_ms_per_page"], 3)
                 if a["cpu_ms_per_page"] and b["cpu_ms_per_page"] else None}
        results["ratio_ours_over_scrapy"] = ratio
        print(f"\nours/scrapy: pages/s x{ratio['pages_per_s']}, CPU per page "
              f"x{ratio['cpu_ms_per_page']}")
    ours = results.get("runs", {}).get("crawler")
    if ours:
        print(f"crawler CPU split (polled /proc, approx.): master {ours['top_cpu_s_polled']} s,"
              f" workers {ours['children_cpu_s_polled']} s; server CPU during the crawl "
              f"{ours['server_cpu_s']} s")
        if ours.get("self_reported"):
            print(f"crawler's own summary: {ours['self_reported']}")
    print("CPU = user+sys of the whole crawl process tree (os.wait4 on the top process); "
          "peak RSS = VmHWM per process, polled from /proc every 0.1 s")
    if args.profile:
        results["profile"] = print_profile_summary(args.profile)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"results written to {args.json}")
    if status:
        print("FAILED: the crawl did not write every page exactly once", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
