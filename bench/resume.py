#!/usr/bin/env python
"""Resume time of a big JOBDIR: how long a restarted master takes to rebuild its frontier.

    python bench/resume.py [--urls 1000000] [--done 0.5] [--hosts 1000] [--runs 2] [--json F]
                           [--reuse DIR] [--seen-dict N]

Writes a journal as a crawl would (crawler.frontier.journal.Journal.record, in batches of 64
results with 20 new links each): --urls URLs admitted over --hosts hosts, the first --done of
them done, the rest still queued. Then, --runs times, does what a restarted master does before
it listens: open the journal and rebuild a Frontier from it
(Frontier.restore(journal.urls())); then compact it as the master does beside the crawl
(Journal.compact: the rows a later row of their URL superseded are deleted; a URL's last
queued row stays, for a recrawl). Reports the wall and CPU seconds of each step, the log's
rows per URL before and after, and the file's size. With --reuse DIR, a JOBDIR compacted by
an older version (one row per URL) can be given as well: the reader takes any log.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.frontier import Frontier  # noqa: E402
from crawler.frontier.journal import Journal  # noqa: E402
from crawler.urls import fingerprint  # noqa: E402


def write_journal(jobdir: str, urls: int, done: float, hosts: int) -> None:
    journal = Journal(jobdir)
    tasks = []
    for i in range(urls):
        host = f"host{i % hosts}.example"
        url = f"http://{host}/page/{i}.html"
        tasks.append({"url": url, "fp": fingerprint(url), "host": host, "depth": 1})
    finished, settled = int(urls * done), 0
    step = 64 * 20  # a result batch: 64 pages, 20 new links each
    for start in range(0, urls, step):
        changes = [(t["fp"], "queued", None, t) for t in tasks[start:start + step]]
        # pages settled meanwhile, in admission order, so that `done` of all end done
        upto = min(finished, settled + int(step * done) + 1, start + step)
        changes += [(t["fp"], "done", None, t) for t in tasks[settled:upto]]
        settled = upto
        journal.record(changes, [])
    if settled < finished:
        journal.record([(t["fp"], "done", None, t) for t in tasks[settled:finished]], [])
    journal.close()


def rows(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM log").fetchone()[0]
    finally:
        db.close()


def resume(jobdir: str, seen_dict: int) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    journal = Journal(jobdir)
    t1, c1 = time.perf_counter(), time.process_time()
    frontier = Frontier(epoch="bench", seen_dict_max=seen_dict)
    frontier.restore(journal.urls())
    t2, c2 = time.perf_counter(), time.process_time()
    # beside the crawl in a master, not part of the resume (older versions: no compaction)
    removed = journal.compact() if hasattr(journal, "compact") else 0
    t3 = time.perf_counter()
    journal.close()
    return {"compacted_rows": removed, "compact_s": round(t3 - t2, 3),
            "open_s": round(t1 - t0, 3), "open_cpu_s": round(c1 - c0, 3),
            "restore_s": round(t2 - t1, 3), "restore_cpu_s": round(c2 - c1, 3),
            "total_s": round(t2 - t0, 3), "queued": frontier.queued,
            "done": frontier.stats["done"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--urls", type=int, default=1_000_000)
    p.add_argument("--done", type=float, default=0.5)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--seen-dict", type=int, default=2_000_000, help="FRONTIER_SEEN_DICT: "
                   "0 keeps every fingerprint in the compact table")
    p.add_argument("--reuse", metavar="DIR", help="copy the JOBDIR written before into DIR "
                   "(written there first if missing): the same journal for several versions")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as folder:
        jobdir = os.path.join(folder, "job")
        started = time.perf_counter()
        if args.reuse and os.path.isdir(args.reuse):
            shutil.copytree(args.reuse, jobdir)
            if os.path.exists(os.path.join(jobdir, "lock")):  # the writer's, not ours
                os.remove(os.path.join(jobdir, "lock"))
        else:
            write_journal(jobdir, args.urls, args.done, args.hosts)
            if args.reuse:
                shutil.copytree(jobdir, args.reuse)
        path = os.path.join(jobdir, "journal.sqlite")
        before = rows(path)
        print(f"journal written in {time.perf_counter() - started:.1f} s: {args.urls:,} URLs, "
              f"{before:,} log rows ({before / args.urls:.2f} per URL), "
              f"{os.path.getsize(path) / 1e6:.0f} MB", flush=True)
        runs = []
        for n in range(args.runs):
            run = resume(jobdir, args.seen_dict)
            run["rows_after"] = rows(path)
            runs.append(run)
            print(f"resume {n + 1}: {run}", flush=True)
        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows_before": before, "runs": runs,
                       "load": load}, f, indent=1)


if __name__ == "__main__":
    main()
