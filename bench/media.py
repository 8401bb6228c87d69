#!/usr/bin/env python
"""Media benchmark: ImagesPipeline in this project (2 workers) against Scrapy's, one site.

    python bench/media.py [--pages 2000] [--images 5000] [--workers 2] [--threads 8]
                          [--written-by master,workers] [--no-scrapy] [--repeat N]
                          [--json out.json] [--smoke] [--backend redis://HOST:PORT/DB]

Generates --images real images with Pillow (PNG: RGB, RGBA and palette; JPEG; sizes from
40x40 to 480x360, textured so they compress as photos do), and --pages pages, each
referring to 2-3 images of its own and 4 of 200 popular ones (1 in 25) (so most images are on one
page and the popular ones on about 40). nginx serves them from a temporary folder (its
access log counts the requests for each image); without nginx, a threaded Python server.
Then, in one run: this project's crawl for each --written-by mode (the bytes travel to the
master in the results, or each worker writes the store itself), and Scrapy's ImagesPipeline
with the same concurrency (total CONCURRENT_REQUESTS = workers x threads, the same per
domain). Checked: every image stored once, requested once, under the same path as Scrapy's,
with the same bytes. Reported: images/s, MB/s (image bytes downloaded), the MB stored
(what crosses the master's connection when the master writes the store), CPU per image
(the whole process tree: pages, parsing and the pipeline included), the master's share.
`--smoke`: 40 pages, 100 images, no Scrapy; exit status 1 unless every check passes.

Nothing here talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from measure import child_env, code_state, find_scrapy_python, free_port, run_measured  # noqa: E402
from nginx import Nginx  # noqa: E402

POPULAR = 200       # images shared by many pages
PER_PAGE_SHARED = 4

SPIDER = '''
from crawler import Spider


class MediaBenchSpider(Spider):
    name = "mediabench"

    def parse(self, response):
        yield {"url": response.url,
               "image_urls": [response.urljoin(u) for u in response.css("img::attr(src)").getall()]}
        yield from response.follow_all(css="a")
'''

SCRAPY_SPIDER = '''
import scrapy


class MediaBenchSpider(scrapy.Spider):
    name = "mediabench"
    custom_settings = {
        "LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False,
        "CONCURRENT_REQUESTS": %(concurrency)d, "CONCURRENT_REQUESTS_PER_DOMAIN": %(concurrency)d,
        "DOWNLOAD_DELAY": 0, "HTTPPROXY_ENABLED": False,
        "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1},
        "IMAGES_STORE": %(store)r,
    }

    def __init__(self, start=None, **kwargs):
        super().__init__(**kwargs)
        self.start_url = start

    async def start(self):
        yield scrapy.Request(self.start_url)

    def start_requests(self):
        yield scrapy.Request(self.start_url)

    def parse(self, response):
        yield {"url": response.url,
               "image_urls": [response.urljoin(u) for u in response.css("img::attr(src)").getall()]}
        for href in response.css("a::attr(href)").getall():
            yield response.follow(href, callback=self.parse)
'''


# -- the site ----------------------------------------------------------------------------------
def write_image(root: str, n: int) -> tuple[str, int]:
    """Make image n (the same every run) under root/img; its name and size."""
    name, data = make_image(n, random.Random(n))
    with open(os.path.join(root, "img", name), "wb") as f:
        f.write(data)
    return name, len(data)


def make_image(n: int, rng: random.Random) -> tuple[str, bytes]:
    """Image n: its file name and bytes."""
    from PIL import Image
    width, height = rng.randint(40, 480), rng.randint(40, 360)
    kind = ("png-rgb", "png-rgba", "png-p", "jpeg", "jpeg")[n % 5]
    # Random pixels, enlarged: a texture that compresses about as photos do.
    small = Image.frombytes("RGB", (max(2, width // 8), max(2, height // 8)),
                            rng.randbytes(3 * max(2, width // 8) * max(2, height // 8)))
    image = small.resize((width, height), Image.BICUBIC)
    if kind == "png-rgba":
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize((width, height)))
    elif kind == "png-p":
        image = image.quantize(64, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, "JPEG", quality=85)
    else:  # a fast zlib level: generating the site must not take longer than crawling it
        image.save(out, "PNG", compress_level=1)
    return f"{n}.{'jpg' if kind == 'jpeg' else 'png'}", out.getvalue()


def build_site(root: str, pages: int, images: int) -> dict[str, int]:
    """Write the site under root; {image path: size} for every image."""
    rng = random.Random(20261203)
    os.makedirs(os.path.join(root, "img"))
    os.makedirs(os.path.join(root, "p"))
    with multiprocessing.Pool(os.cpu_count()) as pool:
        made = pool.starmap(write_image, [(root, n) for n in range(images)], chunksize=50)
    sizes = {f"/img/{name}": size for name, size in made}
    names = [name for name, _ in made]
    popular = min(POPULAR, images // 25)
    own = [names[popular:][i::pages] for i in range(pages)]  # each of the rest on one page
    for i in range(pages):
        refs = own[i] + rng.sample(names[:popular], min(PER_PAGE_SHARED, popular))
        links = [f"/p/{(i * 7 + k) % pages}.html" for k in (1, 2, 3)]
        html = "".join(f'<img src="/img/{r}">' for r in refs) + \
            "".join(f'<a href="{link}">next</a>' for link in links)
        with open(os.path.join(root, "p", f"{i}.html"), "w") as f:
            f.write(f"<html><head><title>page {i}</title></head><body>{html}</body></html>")
    index = "".join(f'<a href="/p/{i}.html">{i}</a> ' for i in range(pages))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(f"<html><body>{index}</body></html>")
    return sizes


class Server:
    """nginx (with an access log, to count requests per image), else a threaded Python one."""

    def __init__(self, root: str, workdir: str) -> None:
        self.log = os.path.join(workdir, "access.log")
        open(self.log, "w").close()
        try:
            for d in (workdir, *[d for d, _, _ in os.walk(root)]):
                os.chmod(d, 0o755)
            os.chmod(self.log, 0o666)
            self.port = free_port()
            self.nginx = Nginx(os.path.join(workdir, "nginx"), f"""
    types {{ text/html html; image/png png; image/jpeg jpg; }}
    log_format path $request_uri;
    access_log {self.log} path;
    sendfile on; tcp_nodelay on; keepalive_requests 1000000;
    server {{ listen 127.0.0.1:{self.port}; root {root}; index index.html; }}""")
            self.nginx.wait("127.0.0.1", self.port)
            self.description, self.pids = self.nginx.description, self.nginx.pids
        except FileNotFoundError:
            self.nginx, self.description, self.pids = None, "python ThreadingHTTPServer", []
            self._python(root)

    def _python(self, root: str) -> None:
        log, lock = self.log, threading.Lock()

        class Handler(SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __init__(self, *a, **k):
                super().__init__(*a, directory=root, **k)

            def log_message(self, *args) -> None:
                with lock, open(log, "a") as f:
                    f.write(self.path + "\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def requests_since(self, offset: int) -> tuple[collections.Counter, int]:
        """Requests for each path logged after byte `offset`, and the log's new end."""
        with open(self.log) as f:
            f.seek(offset)
            text = f.read()
            return collections.Counter(text.split()), f.tell()

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.close()
        else:
            self.httpd.shutdown()


# -- the crawls ----------------------------------------------------------------------------------
def crawl_ours(base: str, workdir: str, args, written_by: str, server: Server) -> dict:
    project = os.path.join(workdir, f"ours-{written_by}")
    os.makedirs(os.path.join(project, "spiders"))
    with open(os.path.join(project, "spiders", "mediabench.py"), "w") as f:
        f.write(SPIDER)
    store = os.path.join(project, "store")
    with open(os.path.join(project, "seeds.txt"), "w") as f:
        f.write(base + "/\n")
    settings = {"ITEM_PIPELINES": json.dumps({"crawler.pipelines.ImagesPipeline": 1}),
                "IMAGES_STORE": store, "MEDIA_WRITTEN_BY": written_by,
                "CONCURRENT_REQUESTS": args.threads,
                "CONCURRENT_REQUESTS_PER_DOMAIN": args.workers * args.threads,
                "ROBOTSTXT_OBEY": "false", "LOG_LEVEL": "WARNING", "LOGSTATS_INTERVAL": 0}
    argv = [sys.executable, "-m", "crawler.master", "seeds.txt", "--spider", "mediabench",
            "--workers", str(args.workers), "-o", "items.jsonl", "--status", "off",
            "--stats", "stats.json"]
    for name, value in settings.items():
        argv += ["-s", f"{name}={value}"]
    if args.backend:  # a crawl of its own name: Redis may hold earlier rounds' keys
        argv += ["--backend", args.backend, "--crawl", f"media-{os.getpid()}-{time.time_ns()}"]
    return measured(f"ours-{written_by}", argv, project, store, "items.jsonl", args, server)


def crawl_scrapy(python: str, base: str, workdir: str, args, server: Server) -> dict:
    project = os.path.join(workdir, "scrapy")
    os.makedirs(project)
    store = os.path.join(project, "store")
    spider = os.path.join(project, "spider.py")
    with open(spider, "w") as f:
        f.write(SCRAPY_SPIDER % {"concurrency": args.workers * args.threads, "store": store})
    argv = [python, "-m", "scrapy", "runspider", spider, "-O", "items.jsonl", "-a",
            f"start={base}/", "-L", "WARNING"]
    result = measured("scrapy", argv, project, store, "items.jsonl", args, server)
    result["version"] = subprocess.run([python, "-c", "import scrapy; print(scrapy.__version__)"],
                                       capture_output=True, text=True).stdout.strip()
    return result


def measured(name: str, argv: list[str], cwd: str, store: str, items: str, args,
             server: Server) -> dict:
    print(f"crawling: {name}", flush=True)
    offset = os.path.getsize(server.log)
    result = run_measured(name, argv, cwd, child_env(), args.timeout, server.pids)
    requests, _ = server.requests_since(offset)
    result["image_requests"] = {p: c for p, c in requests.items() if p.startswith("/img/")}
    result["stored"] = stored_files(store)
    result["stored_mb"] = round(sum(os.path.getsize(os.path.join(store, path))
                                    for path in result["stored"]) / 1e6, 1)
    result["items"] = sum(1 for _ in open(os.path.join(cwd, items)))
    return result


def stored_files(store: str) -> dict[str, str]:
    """{path in the store: md5} of the full images."""
    full = os.path.join(store, "full")
    if not os.path.isdir(full):
        return {}
    out = {}
    for name in os.listdir(full):
        with open(os.path.join(full, name), "rb") as f:
            out[f"full/{name}"] = hashlib.md5(f.read()).hexdigest()
    return out


# -- checks and figures ------------------------------------------------------------------------
def check(result: dict, base: str, sizes: dict[str, int], pages: int) -> list[str]:
    """What is wrong with a run (empty: every image stored once, requested once)."""
    problems = []
    expected = {f"full/{hashlib.sha1((base + p).encode()).hexdigest()}.jpg" for p in sizes}
    if set(result["stored"]) != expected:
        problems.append(f"stored {len(result['stored'])} images, expected {len(expected)} "
                        f"({len(expected - set(result['stored']))} missing)")
    twice = {p: c for p, c in result["image_requests"].items() if c != 1}
    if twice or len(result["image_requests"]) != len(sizes):
        problems.append(f"{len(result['image_requests'])} images requested, "
                        f"{len(twice)} of them not exactly once")
    if result["items"] != pages:
        problems.append(f"{result['items']} items, expected {pages}")
    if result["exit_status"] != 0:
        problems.append(f"exit status {result['exit_status']}")
    return problems


def figures(result: dict, sizes: dict[str, int]) -> dict:
    images, wall = len(result["stored"]), result["wall_s"]
    mb = sum(sizes.get(p, 0) for p in result["image_requests"]) / 1e6
    return {"images": images, "wall_s": wall, "images_per_s": round(images / wall, 1),
            "mb_per_s": round(mb / wall, 2), "image_mb": round(mb, 1),
            "stored_mb": result["stored_mb"], "cpu_s": result["cpu_s"],
            "cpu_ms_per_image": round(1000 * result["cpu_s"] / max(images, 1), 2),
            "master_cpu_s": result["top_cpu_s_polled"],
            "server_cpu_s": result["server_cpu_s"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=2000)
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8, help="threads per worker")
    p.add_argument("--written-by", default="master,workers")
    p.add_argument("--scrapy", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--scrapy-python")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--repeat", type=int, default=1, help="rounds, alternating the order")
    p.add_argument("--json")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--backend", help="crawl on this Redis (redis://HOST:PORT/DB) instead of "
                   "the embedded master")
    args = p.parse_args(argv)
    if args.smoke:
        args.pages, args.images, args.scrapy, args.written_by = 40, 100, False, "master"
    workdir = tempfile.mkdtemp(prefix="bench-media-")
    try:
        return run(args, workdir)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: str) -> int:
    print(f"generating {args.pages} pages, {args.images} images...", flush=True)
    root = os.path.join(workdir, "site")
    sizes = build_site(root, args.pages, args.images)
    server = Server(root, workdir)
    base = f"http://127.0.0.1:{server.port}"
    python = find_scrapy_python(args.scrapy_python) if args.scrapy else None
    runs, failed = {}, False
    order = [f"ours-{mode}" for mode in args.written_by.split(",")] + ["scrapy"] * bool(python)
    try:
        for round_ in range(args.repeat):  # alternating: every other round in reverse
            for name in order if round_ % 2 == 0 else order[::-1]:
                key = name if args.repeat == 1 else f"{name} #{round_ + 1}"
                folder = os.path.join(workdir, f"round-{round_}")
                os.makedirs(folder, exist_ok=True)
                runs[key] = crawl_scrapy(python, base, folder, args, server) \
                    if name == "scrapy" else crawl_ours(base, folder, args, name[5:], server)
    finally:
        server.close()
    report = {"code": code_state(), "server": server.description, "pages": args.pages,
              "images": args.images, "image_mb": round(sum(sizes.values()) / 1e6, 1),
              "concurrency": args.workers * args.threads, "loadavg": os.getloadavg(),
              "runs": {}}
    for name, result in runs.items():
        problems = check(result, base, sizes, args.pages + 1)
        failed |= bool(problems)
        report["runs"][name] = dict(figures(result, sizes), problems=problems)
        if problems:
            print(f"{name}: {'; '.join(problems)}\n{result['stderr'][-2000:]}", file=sys.stderr)
    scrapy_runs = [r for name, r in runs.items() if name.startswith("scrapy")]
    if scrapy_runs:
        theirs = scrapy_runs[0]["stored"]
        for name, result in runs.items():
            same = sum(1 for path, md5 in result["stored"].items() if theirs.get(path) == md5)
            report["runs"][name]["same_path_and_bytes_as_scrapy"] = same
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
