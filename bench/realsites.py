#!/usr/bin/env python
"""Real sites: Debian's documentation trees served by nginx, crawled by this project and by
Scrapy, site by site; what each found, and how fast.

    python bench/realsites.py [--sites python,postgresql,...] [--no-scrapy] [--smoke]

Installs what is missing with apt-get (nginx and the doc packages), gives every tree a host
of its own (127.0.0.2, 127.0.0.3, ...: one nginx server block each, nginx's own MIME types,
gzip as in Debian's default config, an access log of every request, an allow-all
robots.txt), then crawls each root with `python -m crawler.master` and with an equivalent
Scrapy spider, one after the other. The server's log, not the crawlers, says what was
fetched. See bench/README.md ("Real sites") for what is compared. `--smoke` is a quick run
for CI: one small tree, no Scrapy; exit status 1 when a check fails.

Nothing here talks to anything but loopback addresses.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Iterable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from measure import (child_env, code_state, find_scrapy_python, free_port,  # noqa: E402
                     run_measured)
from nginx import Nginx, find_nginx  # noqa: E402
import sitecompare  # noqa: E402


@dataclass(frozen=True)
class Tree:
    """A documentation tree: the package holding it, where it lands, what made it."""
    name: str
    generator: str
    package: str
    root: str                     # a glob: the highest match is served
    books: tuple[str, ...] = ()   # serve only these folders of root, under an nginx autoindex
    linked: bool = False          # every HTML file is linked from the root: all must be found


TREES = {t.name: t for t in (
    Tree("python", "Sphinx", "python3-doc", "/usr/share/doc/python3.*/html"),
    Tree("postgresql", "DocBook XSL, XHTML with <?xml ...?>", "postgresql-doc",
         "/usr/share/doc/postgresql-doc-*/html"),
    Tree("glib", "gtk-doc", "libglib2.0-doc", "/usr/share/gtk-doc/html",
         ("glib", "gio", "gobject")),
    Tree("apache", "Apache httpd's XSLT manual", "apache2-doc",
         "/usr/share/doc/apache2-doc/manual"),
    Tree("doxygen", "Doxygen", "doxygen-doc", "/usr/share/doc/doxygen/html"),
    Tree("debian-reference", "DocBook XSL, XHTML with <?xml ...?>", "debian-reference-en",
         "/usr/share/debian-reference", linked=True),
)}
SMOKE_TREES = ["debian-reference"]
APT_INSTALL = ["apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y",
               "--no-install-recommends"]
ROBOTS = "User-agent: *\nDisallow:\n"
# nginx logs one JSON object per request (escape=json: nginx >= 1.11.8): what was asked, what
# came back, who asked.
LOG_FIELDS = {"t": "$msec", "m": "$request_method", "uri": "$request_uri", "status": "$status",
              "type": "$sent_http_content_type", "bytes": "$body_bytes_sent",
              "ref": "$http_referer", "ua": "$http_user_agent"}


# ---------------------------------------------------------------------------------------------
# Installing and serving

def installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                         text=True)
    return out.returncode == 0 and out.stdout.endswith(" installed")


def package_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True,
                         text=True)
    return out.stdout.strip() or "?"


def ensure_installed(trees: list[Tree]) -> None:
    """apt-get install nginx and the trees' packages when missing (root only)."""
    missing = [t.package for t in trees if not installed(t.package)]
    if find_nginx() is None:
        missing.insert(0, "nginx")
    if not missing:
        return
    command = APT_INSTALL + missing
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"error: missing {', '.join(missing)}; install with: {' '.join(command)}",
              file=sys.stderr)
        sys.exit(2)
    print("installing: " + " ".join(missing), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def tree_root(tree: Tree, workdir: str) -> str:
    """The folder nginx serves for tree (for books: a folder of links to them)."""
    found = sorted(glob.glob(tree.root), key=lambda path: [  # python3.9 < python3.11
        int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)])
    if not found:
        raise SystemExit(f"error: {tree.package} is installed but {tree.root} is missing")
    root = found[-1]
    if not tree.books:
        return root
    folder = os.path.join(workdir, "roots", tree.name)
    os.makedirs(folder)
    os.chmod(folder, 0o755)
    for book in tree.books:
        os.symlink(os.path.join(root, book), os.path.join(folder, book))
    return folder


def warm(root: str) -> int:
    """Read every file once, so neither crawler pays for the disk; returns the bytes."""
    total = 0
    for folder, _, files in os.walk(root, followlinks=True):
        for name in files:
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    total += len(f.read())
            except OSError:
                pass
    return total


def xml_declared(root: str, paths: Iterable[str]) -> int:
    """How many of the files begin with an XML declaration."""
    count = 0
    for path in paths:
        with open(os.path.join(root, path), "rb") as f:
            count += f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml")
    return count


def loopback_port(addresses: list[str], tries: int = 20) -> int:
    """A port free on every one of the addresses."""
    for _ in range(tries):
        port = free_port()
        try:
            for address in addresses:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {addresses}")


def mime_types() -> str:
    """nginx's own list of types: Debian's, or a source build's (prefix/conf)."""
    binary = find_nginx() or "/usr/local/nginx/sbin/nginx"
    for path in ("/etc/nginx/mime.types",
                 os.path.join(os.path.dirname(os.path.dirname(binary)), "conf", "mime.types")):
        if os.path.exists(path):
            return path
    raise SystemExit("error: nginx's mime.types not found")


def server_block(name: str, address: str, port: int, root: str, autoindex: bool,
                 folder: str) -> str:
    return f"""
    server {{
        listen {address}:{port};
        root {root};
        index index.html;
        autoindex {'on' if autoindex else 'off'};
        access_log {folder}/{name}.access.log bench;
        location = /robots.txt {{ alias {folder}/robots.txt; }}
    }}"""


def serve(sites: list[dict], workdir: str) -> Nginx:
    """One nginx, one server block per site, the http settings of Debian's nginx.conf."""
    folder = os.path.join(workdir, "nginx")
    os.makedirs(folder)
    for d in (workdir, folder):
        os.chmod(d, 0o755)   # nginx's workers run as nobody when root starts it
    with open(os.path.join(folder, "robots.txt"), "w") as f:
        f.write(ROBOTS)
    os.chmod(os.path.join(folder, "robots.txt"), 0o644)
    port = loopback_port([s["address"] for s in sites])
    blocks = "".join(server_block(s["name"], s["address"], port, s["root"],
                                  bool(TREES[s["name"]].books), folder) for s in sites)
    http = f"""
    include {mime_types()};
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    gzip on;
    log_format bench escape=json '{json.dumps(LOG_FIELDS)}';
    access_log off;{blocks}"""
    server = Nginx(folder, http)
    for site in sites:
        site["base"] = f"http://{site['address']}:{port}/"
        site["log"] = os.path.join(folder, f"{site['name']}.access.log")
        server.wait(site["address"], port, "/robots.txt")
    return server


# ---------------------------------------------------------------------------------------------
# The two crawls

SCRAPY_SPIDER = '''
import re
from urllib.parse import urlsplit

import scrapy
from scrapy.http import HtmlResponse


class RealSitesSpider(scrapy.Spider):
    """The generic spider's equivalent: same links followed, same title, one item per page."""
    name = "realsites"
    link_xpath = "//a/@href | //area/@href | //link[@rel='next']/@href"
    custom_settings = {"ROBOTSTXT_OBEY": True, "LOG_LEVEL": "INFO",
                       "CONCURRENT_REQUESTS_PER_DOMAIN": %(per_domain)d}

    def __init__(self, start=None, **kwargs):
        super().__init__(**kwargs)
        self.start_url = start
        self.allowed_domains = [urlsplit(start).hostname]

    # The start request is filtered like any link (start_urls would bypass the dupefilter
    # and "/" would be fetched twice): start() for Scrapy >= 2.13, start_requests() before.
    async def start(self):
        yield scrapy.Request(self.start_url)

    def start_requests(self):
        yield scrapy.Request(self.start_url)

    def parse(self, response):
        html = isinstance(response, HtmlResponse)
        # as the generic spider (and browsers) read a title: ASCII whitespace collapsed
        title = " ".join(re.split("[\\t\\n\\f\\r ]+", response.xpath("string(//title)")
                                  .get())).strip(" ") if html else ""
        yield {"url": response.url, "status": response.status, "title": title or None}
        for href in response.xpath(self.link_xpath).getall() if html else ():
            try:
                yield response.follow(href, callback=self.parse)
            except ValueError:   # a malformed link: skipped, as the generic spider does
                pass
'''


def scrapy_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import scrapy; print(scrapy.__version__)"],
                         capture_output=True, text=True, env=child_env())
    return out.stdout.strip()


def crawl(who: str, site: dict, workdir: str, args: argparse.Namespace) -> dict:
    """One measured crawl of one site; what the server logged while it ran."""
    folder = os.path.join(workdir, f"{site['name']}-{who}")
    os.makedirs(folder)
    items = os.path.join(folder, "items.jsonl")
    env = child_env()
    if who == "crawler":
        with open(os.path.join(folder, "seeds.txt"), "w") as f:
            f.write(site["base"] + "\n")
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
        # An empty folder: the project's settings.py does not apply.
        argv = [sys.executable, "-m", "crawler.master", "seeds.txt", "--workers",
                str(args.workers), "-o", items,
                "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}"]
    else:
        with open(os.path.join(folder, "spider.py"), "w") as f:
            f.write(SCRAPY_SPIDER % {"per_domain": args.per_domain})
        argv = [args.scrapy_python, "-m", "scrapy", "runspider", "spider.py", "-O", items,
                "-a", f"start={site['base']}"]
    offset = os.path.getsize(site["log"])
    result = run_measured(who, argv, folder, env, args.timeout, site["server_pids"])
    result["command"] = " ".join(argv)
    result["requests"] = sitecompare.read_log(site["log"], offset, site["base"])
    result["items"] = sitecompare.read_items(items)
    failures = os.path.splitext(items)[0] + ".failures.tsv"
    if os.path.exists(failures):
        with open(failures, encoding="utf-8") as f:
            result["failures"] = [line.rstrip("\n").split("\t", 1) for line in f]
    return result


# ---------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sites", help="comma-separated, of: " + ", ".join(TREES) +
                   " (default all; --smoke: " + ",".join(SMOKE_TREES) + ")")
    p.add_argument("--workers", type=int, default=2, help="our local worker processes (2)")
    p.add_argument("--per-domain", type=int, default=16,
                   help="CONCURRENT_REQUESTS_PER_DOMAIN for both crawlers (16: Scrapy's "
                        "CONCURRENT_REQUESTS, so one host gets all Scrapy would send)")
    p.add_argument("--scrapy", action=argparse.BooleanOptionalAction, default=True,
                   help="crawl with Scrapy too (default yes)")
    p.add_argument("--scrapy-python", help="a Python that can import scrapy")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per crawl (900)")
    p.add_argument("--json", help="results file (default bench/results/realsites-TIME.json)")
    p.add_argument("--keep", action="store_true",
                   help="keep the working folder (nginx logs, items, crawler output)")
    p.add_argument("--smoke", action="store_true",
                   help="a small tree, no Scrapy; exit 1 unless our crawl passes its checks")
    args = p.parse_args(argv)
    if args.smoke:
        args.scrapy, args.timeout = False, min(args.timeout, 60.0)
    args.names = args.sites.split(",") if args.sites else (
        SMOKE_TREES if args.smoke else list(TREES))
    unknown = [n for n in args.names if n not in TREES]
    if unknown:
        p.error(f"unknown site(s) {', '.join(unknown)}; known: {', '.join(TREES)}")
    if args.scrapy:
        args.scrapy_python = find_scrapy_python(args.scrapy_python)
        if args.scrapy_python is None:
            p.error("Scrapy not found (pip install -e '.[bench]'), or give --no-scrapy")
    return args


def prepare(trees: list[Tree], workdir: str) -> list[dict]:
    """A site per tree: its address, the folder to serve (read once), what made it."""
    sites = []
    for i, tree in enumerate(trees):
        root = tree_root(tree, workdir)
        sites.append({"name": tree.name, "address": f"127.0.0.{i + 2}", "root": root,
                      "generator": tree.generator,
                      "package": f"{tree.package} {package_version(tree.package)}",
                      "warm_mb": round(warm(root) / 2**20, 1)})
    return sites


def crawl_site(site: dict, workdir: str, args: argparse.Namespace) -> dict:
    """Both crawls of one site, compared and printed; the site's part of the results."""
    on_disk = sitecompare.html_on_disk(site["root"], site["base"])
    site["html_files"] = len(on_disk)
    site["xml_declared"] = xml_declared(site["root"], on_disk.values())
    print(f"\n== {site['name']}: {site['generator']} ({site['package']}), "
          f"{len(on_disk)} HTML files ({site['xml_declared']} begin with <?xml), "
          f"at {site['base']}", flush=True)
    runs = {who: crawl(who, site, workdir, args)
            for who in ("crawler", "scrapy") if who == "crawler" or args.scrapy}
    report = sitecompare.compare(site, runs, on_disk)
    sitecompare.print_site(report)
    return {**{k: v for k, v in site.items() if k != "server_pids"}, "report": report,
            "runs": {who: sitecompare.raw(r) for who, r in runs.items()}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trees = [TREES[n] for n in args.names]
    ensure_installed(trees)
    results = {"config": {"sites": args.names, "workers": args.workers,
                          "per_domain": args.per_domain, "smoke": args.smoke},
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "platform": platform.platform()},
               "code": code_state(), "scrapy": scrapy_version(args.scrapy_python)
               if args.scrapy else None, "sites": {}}
    workdir = tempfile.mkdtemp(prefix="crawler-realsites-")
    server = None
    try:
        sites = prepare(trees, workdir)
        server = serve(sites, workdir)
        results["server"] = server.description
        print(f"server: {server.description}, one host per site", flush=True)
        for site in sites:
            site["server_pids"] = server.pids
            results["sites"][site["name"]] = crawl_site(site, workdir, args)
    finally:
        if server is not None:
            server.close()
        if args.keep:
            print(f"working folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    reports = {name: s["report"] for name, s in results["sites"].items()}
    sitecompare.print_summary(reports)
    results["failed_checks"] = failed = sitecompare.verdicts(
        reports, {t.name for t in trees if t.linked})
    path = args.json or os.path.join(HERE, "results",
                                     time.strftime("realsites-%Y%m%d-%H%M%S.json"))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=str)
    print(f"results written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
