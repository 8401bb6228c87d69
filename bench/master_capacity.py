#!/usr/bin/env python
"""Master capacity: how many pages/s one master can settle, and lease latency under load.

    python bench/master_capacity.py [--workers 2] [--duration 15] [--warmup 3]
                                    [--links 20] [--batch 64] [--hosts 1000] [--journal]
                                    [--status-poll 10 [--poll-period 3] | --no-status]
                                    [--json out.json]

Starts a real master (`python -m crawler.master --workers 0`) whose seeds are fake URLs
http://h<i>.invalid/ on many host names (nothing is ever fetched: .invalid never resolves and
no worker here fetches), with CONCURRENT_REQUESTS_PER_DOMAIN=1000 so politeness is never the
limit. Then N synthetic worker processes connect like real workers (crawler.link.manager.connect,
the key file, control.hello) and loop: url_queue.lease(id, BATCH) and, for every task, a
result {"lease", "outcome": "done", "status": 200, "items": [{"url"}], "requests": [LINKS new
tasks from crawler.http.request.Request(url).to_task(depth + 1)]} sent back with
result_queue.put(id, results). The new tasks are built before the clock starts (--pool per
worker), so the synthetic workers spend their CPU on the wire, not on URL hashing.

A separate light probe process leases 1 task every --probe-interval seconds (and puts it back
done) and records the latency of each lease and put call. The orchestrator reads
control.status() once a second. Reported: pages/s settled by the master over the measured
window (after --warmup), master CPU seconds per page in that window (so 1/that is what one
fully busy master could settle), master RSS, lease/put latencies (probe: p50/p90/p99/max;
workers' own batched calls too). Everything runs on 127.0.0.1 and stops by itself.

The master serves its status page on a free loopback port (as it does by default);
`--status-poll R` adds a process that GETs /stats.json and / from it R times a second each
(a busy status page; 10 is a browser tab polling ten times faster than the page does) and
reports their latency; `--no-status` runs the master with `--status off`. With
`--poll-period P` the poller polls for P seconds, pauses for P, and so on, and the pages/s of
the polled and the quiet seconds of the same run are compared (pairs a second apart see the
same load from the rest of a shared machine, which runs minutes apart do not).
"""
from __future__ import annotations

import argparse
from hashlib import blake2b
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.link import coordinator, keyfile, manager  # noqa: E402
from crawler.http.request import Request  # noqa: E402
from measure import proc_status_kb as _status_kb  # noqa: E402  (bench/ is on sys.path)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def _connect(address, key_path: str, deadline: float):
    while True:
        try:
            key = keyfile.read(key_path) if os.path.exists(key_path) else None
            if key is not None:
                return manager.connect(address, key)
        except (OSError, EOFError):
            pass
        if time.time() > deadline:
            raise RuntimeError(f"no master at {address}")
        time.sleep(0.1)


def _polled_vs_quiet(series: list, args: argparse.Namespace) -> dict:
    """Mean pages/s of the seconds (after the warm-up, before the last second, where the
    synthetic workers stop) whose middle lies in a polled half of the period, against those
    in a quiet half."""
    kinds: dict[bool, list[float]] = {True: [], False: []}
    for a, b in zip(series, series[1:]):
        if a[0] >= args.warmup and b[0] <= args.duration - 1 and b[0] > a[0]:
            kinds[polling((a[0] + b[0]) / 2, args.poll_period)].append(
                (b[1] - a[1]) / (b[0] - a[0]))
    mean = {k: sum(v) / len(v) if v else 0.0 for k, v in kinds.items()}
    return {"polled_pages_per_s": round(mean[True], 1), "quiet_pages_per_s": round(mean[False], 1),
            "polled_n": len(kinds[True]), "quiet_n": len(kinds[False]),
            "ratio": round(mean[True] / mean[False], 4) if mean[False] else None}


def _free_port() -> int:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_pid(url: str | None) -> int | None:
    """The pid of the redis-server at url when it runs on this host (to read its CPU)."""
    if not url:
        return None
    from crawler.frontier.redis_keys import client_for
    pid = int(client_for(url).info("server")["process_id"])
    return pid if os.path.exists(f"/proc/{pid}") else None


def _forget_crawl(url: str, crawl: str) -> None:
    """Remove the bench crawl's keys: it was only a measurement."""
    from crawler.frontier.redis_keys import client_for
    client = client_for(url)
    for key in list(client.scan_iter(match=f"crawler:{crawl}:*", count=1000)):
        client.unlink(key)


def _code_state() -> dict:
    sys.path.insert(0, HERE)
    import run
    return run.code_state()


def _percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    s = sorted(samples)

    def q(p: float) -> float:
        return round(1000 * s[min(len(s) - 1, int(p * len(s)))], 3)
    return {"n": len(s), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
            "max_ms": round(1000 * s[-1], 3), "mean_ms": round(1000 * sum(s) / len(s), 3)}


# ---------------------------------------------------------------------------------------------
# Synthetic worker and probe (child processes)

def _wait_for_start(ready: mp.Queue, start: "mp.sharedctypes.Synchronized", duration: float,
                    who: str) -> tuple[float, float]:
    """Tell the orchestrator we are ready; wait for the common start time it sets."""
    ready.put(who)
    while start.value == 0.0:
        time.sleep(0.005)
    while time.time() < start.value:
        time.sleep(0.002)
    return start.value, start.value + duration


def synthetic_worker(index: int, address, key_path: str, start, duration: float,
                     args: dict, report: mp.Queue, ready: mp.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(index)
    hosts, links = args["hosts"], args["links"]
    # Unique new URLs, hashed before the clock starts.
    pool = [Request(f"http://h{rng.randrange(hosts)}.invalid/w{index}/p{n}").to_task(1)
            for n in range(args["pool"])]
    if pool and set(pool[0]) != {"url", "depth", "host", "fp"}:
        raise RuntimeError(f"to_task() now makes {sorted(pool[0])}: update the fast path")
    used = 0
    proxies = _connect(address, key_path, time.time() + 30)
    wid = f"synthetic-{index}-{os.getpid()}"
    proxies = coordinator.route(proxies, proxies["control"].hello({"worker": wid,
                                                                    "threads": args["batch"]}))
    lease_q, put_q = proxies["url_queue"], proxies["result_queue"]
    lease_t, put_t, pages, generated, empty = [], [], 0, 0, 0
    start_at, stop_at = _wait_for_start(ready, start, duration, wid)
    done = False
    while not done and time.time() < stop_at:
        t0 = time.perf_counter()
        reply = lease_q.lease(wid, args["batch"])
        lease_t.append(time.perf_counter() - t0)
        if reply["done"]:
            break
        tasks = reply["tasks"]
        if not tasks:
            empty += 1
            time.sleep(min(max(reply["wait"], 0.001), 0.05))
            continue
        results = []
        for task in tasks:
            if task.get("robots"):   # only when robots.txt is obeyed: answer "none"
                results.append({"lease": task["lease"], "outcome": "done", "status": 404,
                                "robots": ""})
                continue
            depth = task.get("depth", 0) + 1
            if used + links <= len(pool):
                new = pool[used:used + links]
                used += links
                for t in new:
                    t["depth"] = depth
            else:   # pool used up: same shape, URL hashed directly (5x cheaper than to_task)
                new = []
                for _ in range(links):
                    host = f"h{rng.randrange(hosts)}.invalid"
                    url = f"http://{host}/w{index}/g{generated}"
                    generated += 1
                    new.append({"url": url, "depth": depth, "host": host,
                                "fp": blake2b(url.encode(), digest_size=16).digest()})
            results.append({"lease": task["lease"], "outcome": "done", "status": 200,
                            "items": [{"url": task["url"]}], "requests": new, "dropped": {}})
        t0 = time.perf_counter()
        put_q.put(wid, results)
        put_t.append(time.perf_counter() - t0)
        pages += len(results)
    try:
        proxies["control"].bye(wid)
    except Exception:
        pass
    report.put({"role": "worker", "index": index, "pages": pages, "lease_s": lease_t,
                "put_s": put_t, "generated_fast": generated, "empty_leases": empty,
                "pool_used": used})


def probe(address, key_path: str, start, duration: float, interval: float,
          report: mp.Queue, ready: mp.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proxies = _connect(address, key_path, time.time() + 30)
    wid = f"probe-{os.getpid()}"
    proxies = coordinator.route(proxies, proxies["control"].hello({"worker": wid,
                                                                    "threads": 1}))
    lease_q, put_q = proxies["url_queue"], proxies["result_queue"]
    lease_t, put_t, samples = [], [], []
    start_at, stop_at = _wait_for_start(ready, start, duration, wid)
    next_at = time.perf_counter()
    while time.time() < stop_at:
        t0 = time.perf_counter()
        reply = lease_q.lease(wid, 1)
        t1 = time.perf_counter()
        lease_t.append(t1 - t0)
        samples.append((time.time(), t1 - t0))
        if reply["done"]:
            break
        if reply["tasks"]:
            task = reply["tasks"][0]
            t0 = time.perf_counter()
            put_q.put(wid, [{"lease": task["lease"], "outcome": "done", "status": 200,
                             "items": [{"url": task["url"]}], "requests": [], "dropped": {}}])
            put_t.append(time.perf_counter() - t0)
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    try:
        proxies["control"].bye(wid)
    except Exception:
        pass
    report.put({"role": "probe", "lease_s": lease_t, "put_s": put_t, "samples": samples})


def polling(t: float, period: float) -> bool:
    """Is the poller at work `t` seconds after the start (always, without a period)?"""
    return not period or int(t // period) % 2 == 0


def status_poller(port: int, start, duration: float, rate: float, period: float,
                  report: mp.Queue, ready: mp.Queue) -> None:
    """GET /stats.json and / `rate` times a second each, over one kept-alive connection
    (only in the polling halves of each 2 x `period` seconds, when a period is given)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_at, stop_at = _wait_for_start(ready, start, duration, "status-poller")
    times: dict[str, list[float]] = {"/stats.json": [], "/": []}
    errors, snapshot_s, conn = 0, [], None
    next_at = time.perf_counter()
    while time.time() < stop_at:
        if not polling(time.time() - start_at, period):
            time.sleep(0.01)
            next_at = time.perf_counter()
            continue
        for path in times:
            t0 = time.perf_counter()
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise OSError(f"status {response.status}")
            except (OSError, http.client.HTTPException):
                errors += 1
                conn = None
                continue
            times[path].append(time.perf_counter() - t0)
            if path == "/stats.json":
                snapshot_s.append(json.loads(body)["snapshot_seconds"])
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.perf_counter()))
    report.put({"role": "status", "errors": errors, "snapshot_s": snapshot_s,
                **{f"get{path}": _percentiles(v) for path, v in times.items()}})


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="synthetic worker processes (2)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load (15)")
    p.add_argument("--warmup", type=float, default=3.0,
                   help="seconds at the start not measured (3)")
    p.add_argument("--links", type=int, default=20, help="new links per page (20)")
    p.add_argument("--batch", type=int, default=64, help="tasks per lease call (64)")
    p.add_argument("--hosts", type=int, default=1000, help="distinct fake hosts (1000)")
    p.add_argument("--pool", type=int, default=300_000,
                   help="new tasks per worker built with to_task() before the clock starts; "
                        "after those, tasks of the same shape are made with a direct hash "
                        "(300000)")
    p.add_argument("--pages", type=int, default=0,
                   help="CLOSESPIDER_PAGECOUNT: stop after this many pages (0: by time)")
    p.add_argument("--journal", action="store_true",
                   help="run the master with a JOBDIR, so every URL and item is journaled")
    p.add_argument("--probe-interval", type=float, default=0.01)
    p.add_argument("--master-gc", choices=("on", "off", "raised"), default="on",
                   help="experiment: run the master with Python's cyclic GC as is (on), "
                        "disabled (off), or with the generation-0 threshold raised 100x (raised)")
    p.add_argument("--status-poll", type=float, default=0.0, metavar="R",
                   help="GET the master's /stats.json and / R times a second each (0: never)")
    p.add_argument("--poll-period", type=float, default=0.0, metavar="P",
                   help="poll for P s, pause for P s, ...; compare the two kinds of second")
    p.add_argument("--no-status", action="store_true",
                   help="run the master without its status page (--status off)")
    p.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="another setting for the master (e.g. FRONTIER_MEMORY_QUEUE=100000)")
    p.add_argument("--backend", metavar="URL", help="run the master with --backend URL "
                   "(redis://HOST:PORT/DB): the synthetic workers lease from and settle into "
                   "Redis directly, and Redis's CPU per page is reported too")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.status_poll and args.no_status:
        p.error("--status-poll needs the status page: drop --no-status")

    workdir = tempfile.mkdtemp(prefix="crawler-capacity-")
    seeds = os.path.join(workdir, "seeds.txt")
    with open(seeds, "w") as f:
        f.writelines(f"http://h{i}.invalid/\n" for i in range(args.hosts))
    key_path = os.path.join(workdir, "crawl.key")
    keyfile.create(key_path)
    port, status_port = _free_port(), _free_port()
    address = ("127.0.0.1", port)
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    settings = ["LOG_LEVEL=WARNING", "ROBOTSTXT_OBEY=false",
                "CONCURRENT_REQUESTS_PER_DOMAIN=1000", f"BATCH_SIZE={args.batch}",
                "LEASE_TIMEOUT=600"]
    settings += args.set
    if args.pages:
        settings.append(f"CLOSESPIDER_PAGECOUNT={args.pages}")
    if args.journal:
        settings.append(f"JOBDIR={os.path.join(workdir, 'job')}")
    launcher = [sys.executable, "-m", "crawler.master"]
    if args.master_gc != "on":
        setup = "gc.disable()" if args.master_gc == "off" else \
            "gc.set_threshold(70000, 100, 100)"
        launcher = [sys.executable, "-c", f"import gc, runpy; {setup}; "
                    "runpy.run_module('crawler.master', run_name='__main__', alter_sys=True)"]
    argv_master = [*launcher, seeds, "--workers", "0",
                   "--bind", f"127.0.0.1:{port}", "--authkey-file", key_path,
                   "-o", os.path.join(workdir, "items.jsonl"),
                   "--status", "off" if args.no_status else f"127.0.0.1:{status_port}"]
    crawl = f"capacity-{os.getpid()}"
    if args.backend:
        argv_master += ["--backend", args.backend, "--crawl", crawl]
    for s in settings:
        argv_master += ["-s", s]
    redis_pid = _redis_pid(args.backend)
    master_log = open(os.path.join(workdir, "master.log"), "w+")
    ctx = mp.get_context("fork")
    report: mp.Queue = ctx.Queue()
    master = subprocess.Popen(argv_master, cwd=workdir, env=env, stdout=master_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    children: list = []
    result: dict = {}
    try:
        print(f"master pid {master.pid} on 127.0.0.1:{port}; {args.hosts} fake hosts; "
              f"{args.workers} synthetic workers x batch {args.batch}, {args.links} new "
              f"links/page; building {args.pool} tasks per worker...", flush=True)
        # Workers build their pools and connect; all start together once every one is ready.
        wargs = {"hosts": args.hosts, "links": args.links, "batch": args.batch,
                 "pool": args.pool}
        start = ctx.Value("d", 0.0)
        ready: mp.Queue = ctx.Queue()
        for i in range(args.workers):
            proc = ctx.Process(target=synthetic_worker, args=(i, address, key_path, start,
                                                              args.duration, wargs, report, ready))
            proc.start()
            children.append(proc)
        prober = ctx.Process(target=probe, args=(address, key_path, start, args.duration,
                                                 args.probe_interval, report, ready))
        prober.start()
        children.append(prober)
        if args.status_poll:
            poller = ctx.Process(target=status_poller, args=(
                status_port, start, args.duration, args.status_poll, args.poll_period, report,
                ready))
            poller.start()
            children.append(poller)
        control = _connect(address, key_path, time.time() + 30)["control"]
        for _ in children:
            ready.get(timeout=300)
        start_at = time.time() + 0.3
        stop_at = start_at + args.duration
        start.value = start_at

        series = []   # (t since start, done, master cpu s, master rss kB)
        while time.time() < start_at:
            time.sleep(0.01)
        t_next = start_at
        while time.time() < stop_at + 0.5 and master.poll() is None:
            try:
                st = control.status()
            except Exception:
                break
            now = time.time()
            series.append((round(now - start_at, 3), st.get("done", 0),
                           _cpu(master.pid), _status_kb(master.pid, "VmRSS"),
                           st.get("queued", 0), _cpu(redis_pid) if redis_pid else None))
            t_next += 1.0
            time.sleep(max(0.0, t_next - time.time()))
        reports = []
        for _ in children:
            try:
                reports.append(report.get(timeout=60))
            except Exception:
                break
        for proc in children:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        hwm = _status_kb(master.pid, "VmHWM")

        window = [row for row in series if args.warmup <= row[0] <= args.duration]
        if len(window) < 2:
            window = series
        (t0, d0, c0, _, _, r0), (t1, d1, c1, rss1, q1, r1) = window[0], window[-1]
        pages = d1 - d0
        pps = pages / (t1 - t0) if t1 > t0 else 0.0
        cpu_per_page = (c1 - c0) / pages if pages and c1 is not None else None
        probe_rep = next((r for r in reports if r["role"] == "probe"), None)
        workers_rep = [r for r in reports if r["role"] == "worker"]
        status_rep = next((r for r in reports if r["role"] == "status"), None)
        lease_window = [dt for ts, dt in probe_rep["samples"]
                        if start_at + args.warmup <= ts <= start_at + args.duration] \
            if probe_rep else []
        result = {
            "config": vars(args) | {"settings": settings},
            "code": _code_state(),
            "pages_settled_total": series[-1][1] if series else 0,
            "window_s": round(t1 - t0, 2),
            "pages_per_s": round(pps, 1),
            "master_cpu_s_in_window": round(c1 - c0, 2) if c1 is not None else None,
            "master_cpu_ms_per_page": round(1000 * cpu_per_page, 3) if cpu_per_page else None,
            "master_bound_pages_per_s": round(1 / cpu_per_page, 0) if cpu_per_page else None,
            "master_cpu_busy": round((c1 - c0) / (t1 - t0), 3) if c1 is not None and t1 > t0
            else None,
            "redis_cpu_ms_per_page": round(1000 * (r1 - r0) / pages, 4)
            if r1 is not None and pages else None,
            "redis_cpu_busy": round((r1 - r0) / (t1 - t0), 3) if r1 is not None and t1 > t0
            else None,
            "per_second": [{"t": round(b[0], 1), "pages": b[1] - a[1],
                            "master_cpu": round((b[2] - a[2]) / (b[0] - a[0]), 2)
                            if a[2] is not None and b[2] is not None and b[0] > a[0] else None,
                            "queued": b[4]} for a, b in zip(series, series[1:])],
            "master_rss_mb_end": round((rss1 or 0) / 1024, 1),
            "master_hwm_mb": round((hwm or 0) / 1024, 1),
            "queued_at_end": q1,
            "probe_lease": _percentiles(lease_window),
            "probe_lease_all": _percentiles(probe_rep["lease_s"]) if probe_rep else None,
            "probe_put": _percentiles(probe_rep["put_s"]) if probe_rep else None,
            "worker_lease": _percentiles([x for r in workers_rep for x in r["lease_s"]]),
            "worker_put": _percentiles([x for r in workers_rep for x in r["put_s"]]),
            "workers": [{k: v for k, v in r.items() if not k.endswith("_s")}
                        for r in workers_rep],
            "series": series,
            "polled_vs_quiet": _polled_vs_quiet(series, args) if args.poll_period else None,
            "status_poll": status_rep and {
                **{k: v for k, v in status_rep.items() if k != "snapshot_s"},
                "snapshot_ms_max": round(1000 * max(status_rep["snapshot_s"] or [0]), 3),
                "snapshot_ms_median": round(1000 * sorted(status_rep["snapshot_s"] or [0])[
                    len(status_rep["snapshot_s"]) // 2], 3)},
        }
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(master.pid, signal.SIGKILL)
                master.wait()
        for proc in children:
            if proc.is_alive():
                proc.kill()
                proc.join()
        if args.backend:
            _forget_crawl(args.backend, crawl)
        master_log.seek(0)
        tail = master_log.read()[-1500:]
        master_log.close()
        shutil.rmtree(workdir, ignore_errors=True)
    result["master_output_tail"] = tail
    r = result
    print(f"\nsettled {r['pages_per_s']} pages/s over {r['window_s']} s (after {args.warmup} s "
          f"warm-up); {r['pages_settled_total']} pages in all; {r['queued_at_end']} queued at "
          f"the end")
    print(f"master CPU {r['master_cpu_ms_per_page']} ms/page, busy {r['master_cpu_busy']} of a "
          f"core -> at most ~{r['master_bound_pages_per_s']} pages/s with a whole core; RSS "
          f"{r['master_rss_mb_end']} MB at the end (peak {r['master_hwm_mb']} MB)")
    if r["redis_cpu_ms_per_page"] is not None:
        print(f"redis-server CPU {r['redis_cpu_ms_per_page']} ms/page, busy "
              f"{r['redis_cpu_busy']} of a core -> at most "
              f"~{round(1 / r['redis_cpu_ms_per_page'] * 1000)} pages/s with a whole core")
    print("per second (pages settled / master CPU share / queued): " + ", ".join(
        f"{x['pages']}/{x['master_cpu']}/{x['queued']}" for x in r["per_second"]))
    if r["master_cpu_busy"] is not None and r["master_cpu_busy"] < 0.8:
        print("note: the master was idle part of the time: the synthetic workers (or other "
              "load on the CPUs) were the limit; the CPU-based bound is the better estimate",
              file=sys.stderr)
    for name in ("probe_lease", "probe_put", "worker_lease", "worker_put"):
        d = r[name] or {}
        print(f"{name:13} n={d.get('n')}: p50 {d.get('p50_ms')} ms, p90 {d.get('p90_ms')} ms, "
              f"p99 {d.get('p99_ms')} ms, max {d.get('max_ms')} ms")
    for w in r["workers"]:
        print(f"  worker {w['index']}: {w['pages']} pages, {w['empty_leases']} empty leases, "
              f"{w['pool_used']} pre-built links used, {w['generated_fast']} made on the fly")
    if r["status_poll"]:
        sp = r["status_poll"]
        print(f"status page: {sp['get/stats.json'].get('n')} GET /stats.json (p50 "
              f"{sp['get/stats.json'].get('p50_ms')} ms, p99 {sp['get/stats.json'].get('p99_ms')}"
              f" ms), {sp['get/'].get('n')} GET / (p99 {sp['get/'].get('p99_ms')} ms), "
              f"{sp['errors']} errors; snapshot under the lock: median "
              f"{sp['snapshot_ms_median']} ms, max {sp['snapshot_ms_max']} ms")
    if r["polled_vs_quiet"]:
        pq = r["polled_vs_quiet"]
        print(f"seconds polled: {pq['polled_pages_per_s']} pages/s (n={pq['polled_n']}); quiet: "
              f"{pq['quiet_pages_per_s']} (n={pq['quiet_n']}); ratio {pq['ratio']}")
    if "error" in tail.lower() or "traceback" in tail.lower():
        print("master output:\n" + tail, file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"results written to {args.json}")
    return 0 if r["pages_per_s"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
