#!/usr/bin/env python
"""Where a worker's CPU goes per page: cProfile on every thread of an in-process worker.

    python bench/profile_worker.py [--pages 2000] [--links 20] [--size-kb 8]
                                   [--timer cpu|wall] [--threads N] [-o worker.prof]
    python bench/profile_worker.py --broad 200 --pages 51 --per-domain 8   # the broad site

Serves the generated site like bench/run.py (nginx when installed, else the Python server),
starts a real master (`python -m crawler.master --workers 0`), and runs ONE worker in this
process (crawler.worker.Worker) with a cProfile profiler on each of its threads (coordinator
and fetchers), merged at the end. The default timer is per-thread CPU time
(time.thread_time), so blocking waits cost nothing and the table reads as CPU per page.
cProfile adds overhead to every Python call: compare functions with each other, and use
bench/run.py for absolute numbers. Call counts are exact (calls per page).
"""
from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py)

from crawler.sitegen import Site  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=2000)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--size-kb", type=float, default=8.0)
    p.add_argument("--threads", type=int, help="fetcher threads (default: the master's "
                   "CONCURRENT_REQUESTS)")
    p.add_argument("--per-domain", type=int, default=16)
    p.add_argument("--broad", type=int, metavar="HOSTS", help="crawl bench/broadsite.py's "
                   "site instead: HOSTS hosts of --pages pages each at --latency-ms")
    p.add_argument("--latency-ms", type=float, default=60.0, help="with --broad (60)")
    p.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    p.add_argument("--timer", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("-o", "--output", help="write the merged pstats here")
    p.add_argument("--no-profile", action="store_true",
                   help="no profiler: just pages/s and CPU/page of one in-process worker")
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes (more than 1 only with --no-profile): the extra "
                        "ones are forks of this one")
    args = p.parse_args(argv)
    if args.processes > 1 and not args.no_profile:
        p.error("--processes > 1 needs --no-profile")

    if not args.broad:
        site = Site(args.pages, args.links, args.size_kb)
        pages = bench.render_site(site)
    workdir = tempfile.mkdtemp(prefix="crawler-profile-")
    server = master = None
    try:
        seeds = os.path.join(workdir, "seeds.txt")
        server = _start_server(args, pages if not args.broad else None, workdir, seeds)
        key = os.path.join(workdir, "crawl.key")
        port = bench.free_port()
        env = bench.child_env()
        env["PYTHONPATH"] = bench.REPO
        master_out = open(os.path.join(workdir, "master.out"), "w+")
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        master_started = time.perf_counter()
        master = subprocess.Popen(
            [sys.executable, "-m", "crawler.master", seeds, "--workers", "0",
             "--bind", f"127.0.0.1:{port}", "--authkey-file", key,
             "-o", os.path.join(workdir, "items.jsonl"), "-s", "LOG_LEVEL=WARNING",
             "-s", "ROBOTSTXT_OBEY=false", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}"],
            cwd=workdir, env=env, stdout=master_out, stderr=subprocess.STDOUT,
            start_new_session=True)

        from crawler import worker as worker_mod
        timer = time.thread_time if args.timer == "cpu" else time.perf_counter
        profiles: list[cProfile.Profile] = []
        original_run = threading.Thread.run

        def profiled_run(self: threading.Thread) -> None:
            prof = cProfile.Profile(timer)
            profiles.append(prof)
            prof.enable()
            try:
                original_run(self)
            finally:
                prof.disable()

        if not args.no_profile:
            threading.Thread.run = profiled_run
        extra = []
        for _ in range(args.processes - 1):
            proc = multiprocessing.get_context("fork").Process(
                target=_child_worker, args=(port, key, args.threads))
            proc.start()
            extra.append(proc)
        w = worker_mod.Worker(("127.0.0.1", port), key, args.threads, 30.0)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        main_prof = cProfile.Profile(timer)
        profiles.append(main_prof)
        if not args.no_profile:
            main_prof.enable()
        status = w.run()
        main_prof.disable()
        wall = time.perf_counter() - started
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        threading.Thread.run = original_run
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                t.name.startswith("fetch-") and t.name[6:].isdigit() and t.is_alive()
                for t in threading.enumerate()):
            time.sleep(0.05)
        for proc in extra:
            proc.join(args.timeout)
        try:
            master.wait(max(5.0, args.timeout))
        except subprocess.TimeoutExpired:
            pass
        total_wall = time.perf_counter() - master_started
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        master_out.seek(0)
        summary = master_out.read()
        items = os.path.join(workdir, "items.jsonl")
        n = sum(1 for _ in open(items)) if os.path.exists(items) else 0
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        under = "" if args.no_profile else " under the profiler"
        print(f"worker exit {status}; {n} pages in {wall:.1f} s ({n / wall:.0f} pages/s"
              f"{under}); worker process CPU {cpu:.2f} s = {1000 * cpu / max(n, 1):.2f} "
              f"ms/page{' (profiler overhead included)' if under else ''}")
        print("master:", " | ".join(line.strip() for line in summary.splitlines()
                                    if "pages" in line))
        if args.no_profile:
            all_cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((children0, children1),
                          (self0, self1)) for f in ("ru_utime", "ru_stime"))
            print(f"whole crawl (master + {args.processes} worker processes, as bench/run.py "
                  f"counts it): {n} pages in {total_wall:.2f} s = {n / total_wall:.1f} pages/s;"
                  f" CPU {all_cpu:.2f} s = {1000 * all_cpu / max(n, 1):.3f} ms/page")
            return 0 if status == 0 else 1
        stats = pstats.Stats(profiles[0])
        for prof in profiles[1:]:
            try:
                stats.add(prof)
            except TypeError:   # a thread that never ran anything
                pass
        if args.output:
            stats.dump_stats(args.output)
        total = stats.total_tt
        print(f"\nprofiled {args.timer} time, all threads: {total:.2f} s = "
              f"{1000 * total / max(n, 1):.2f} ms/page over {len(profiles)} threads")
        for key_name, title in (("tottime", "self"), ("cumulative", "inclusive")):
            print(f"\n-- top {args.top} by {title} {args.timer} time "
                  f"(ms/page, calls/page) --")
            _print_rows(stats, key_name, args.top, n, total)
        return 0 if status == 0 else 1
    finally:
        if master is not None and master.poll() is None:
            master.terminate()
            try:
                master.wait(15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _start_server(args, pages, workdir: str, seeds: str):
    """The single-host site (nginx or Python) or, with --broad, the broad-crawl site."""
    if args.broad:
        from broadsite import BroadServer, BroadSite
        site = BroadSite(args.broad, args.pages, min(args.links, 10), args.size_kb)
        server = BroadServer(site, args.latency_ms / 1000, 0.5, 2)
        bases = [f"http://{ip}:{server.port}/" for ip in site.ips]
        print(f"server: {server.description}", flush=True)
    else:
        server = bench.start_server(args.server, pages, workdir, 2)
        bases = [f"http://127.0.0.1:{server.port}/"]
        print(f"server: {server.description} at {bases[0]}; {args.pages} pages", flush=True)
    with open(seeds, "w") as f:
        f.write("".join(b + "\n" for b in bases))
    return server


def _child_worker(port: int, key: str, threads: int | None) -> None:
    from crawler import worker as worker_mod
    sys.exit(worker_mod.Worker(("127.0.0.1", port), key, threads, 30.0).run())


def _print_rows(stats: pstats.Stats, key: str, top: int, pages: int, total: float) -> None:
    rows = []
    for func, (cc, nc, tt, ct, _) in stats.stats.items():
        rows.append((func, nc, tt, ct))
    index = 2 if key == "tottime" else 3
    rows.sort(key=lambda r: r[index], reverse=True)
    print(f"{'self ms':>8} {'incl ms':>8} {'self %':>6} {'calls':>8}  function")
    for func, nc, tt, ct in rows[:top]:
        filename, line, name = func
        where = f"{_short(filename)}:{line}({name})" if line else name
        print(f"{1000 * tt / pages:8.3f} {1000 * ct / pages:8.3f} {100 * tt / total:6.1f} "
              f"{nc / pages:8.1f}  {where}")


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


if __name__ == "__main__":
    sys.exit(main())
