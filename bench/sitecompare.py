"""What two crawls of one site found, from the server's access log and the items each wrote:
HTML pages by normalized URL, pages only one found, titles that differ, URLs fetched twice,
speed; and the checks bench/realsites.py passes or fails on that."""
from __future__ import annotations

import collections
import json
import os
from urllib.parse import quote

from crawler.urls import normalize

HTML_TYPES = ("text/html", "application/xhtml+xml")
EXAMPLES = 5
SPEEDUP = 6.0   # the expected pages/s over Scrapy's


def read_log(path: str, offset: int, base: str) -> list[dict]:
    """The requests nginx logged after offset (one JSON object a line), each with the
    normalized URL it asked for."""
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8", "replace").splitlines()
    requests = []
    for line in lines:
        entry = json.loads(line)
        entry["status"], entry["t"] = int(entry["status"]), float(entry["t"])
        entry["url"] = normalize(base.rstrip("/") + entry["uri"])
        requests.append(entry)
    return requests


def read_items(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def html_on_disk(root: str, base: str) -> dict[str, str]:
    """URL -> path of every .html/.htm/.xhtml file under root (links followed, once each)."""
    found, seen = {}, set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel = os.path.relpath(folder, root)
        for name in files:
            if name.endswith((".html", ".htm", ".xhtml")):
                path = name if rel == "." else f"{rel}/{name}"
                found[normalize(base + quote(path))] = path
    return found


def is_html(entry: dict) -> bool:
    return entry["status"] == 200 and entry["type"].split(";")[0].strip().lower() in HTML_TYPES


def crawl_stats(run: dict) -> dict:
    """One crawl: its HTML pages (url -> title) and how its items agree with the log."""
    served = {e["url"]: e for e in run["requests"] if e["status"] == 200}
    items = [i for i in run["items"] if i.get("status") == 200]
    counts = collections.Counter(normalize(i["url"]) for i in items)
    pages = {}
    for item in items:
        url = normalize(item["url"])
        if url in served and is_html(served[url]):
            pages.setdefault(url, item.get("title") or None)
    fetched = collections.Counter((e["m"], e["uri"]) for e in run["requests"])
    twice = sorted((n, f"{m} {uri}") for (m, uri), n in fetched.items() if n > 1)[::-1]
    html_served = {u for u, e in served.items() if is_html(e)}
    wall, cpu = run["wall_s"], run["cpu_s"]
    times = [e["t"] for e in run["requests"]]
    span = round(max(times) - min(times), 3) if times else 0.0   # first to last request
    return {
        "pages": pages,
        "html_pages": len(pages), "items": len(run["items"]), "items_200": len(items),
        "requests": len(run["requests"]),
        "statuses": dict(collections.Counter(str(e["status"]) for e in run["requests"])),
        "fetched_twice": len(twice), "fetched_twice_examples": twice[:EXAMPLES],
        "items_twice": sorted(u for u, n in counts.items() if n > 1)[:EXAMPLES],
        "items_not_served": sorted(set(counts) - set(served))[:EXAMPLES],
        "html_served_without_item": sorted(html_served - set(counts))[:EXAMPLES],
        "exit_status": run["exit_status"], "wall_s": wall, "cpu_s": cpu,
        "pages_per_s": round(len(items) / wall, 1) if wall else 0.0,
        "cpu_ms_per_page": round(1000 * cpu / len(items), 2) if items else None,
        "fetch_span_s": span,
        "pages_per_s_in_span": round(len(items) / span, 1) if span else None,
        "server_cpu_s": run["server_cpu_s"],
        "peak_rss_mb": "+".join(f"{x:.0f}" for x in [run["top_hwm_mb"],
                                                         *run["children_hwm_mb"]]),
        "failures": dict(collections.Counter(r for r, _ in run.get("failures", []))),
    }


def compare(site: dict, runs: dict[str, dict], on_disk: dict[str, str]) -> dict:
    """The report for one site: each crawl's stats, and where they disagree."""
    stats = {who: crawl_stats(run) for who, run in runs.items()}
    report = {"site": site["name"], "generator": site["generator"], "base": site["base"],
              "html_files": len(on_disk), "crawlers": stats}
    for s in stats.values():
        s["files_without_page"] = len(_missing_files(on_disk, s["pages"]))
    fetched = set().union(*({e["url"] for e in r["requests"] if e["status"] == 200}
                            for r in runs.values()))
    report["files_fetched_by_none"] = _some(sorted(_missing_files(on_disk, fetched).values()))
    if len(stats) == 2:
        ours, theirs = stats["crawler"]["pages"], stats["scrapy"]["pages"]
        referer = {e["url"]: e["ref"] for e in runs["scrapy"]["requests"]}
        only_scrapy = sorted(set(theirs) - set(ours))
        report["only_crawler"] = _some(sorted(set(ours) - set(theirs)))
        report["only_scrapy"] = _some([(u, referer.get(u, "")) for u in only_scrapy])
        differ = sorted((u, ours[u], theirs[u]) for u in set(ours) & set(theirs)
                        if ours[u] != theirs[u])
        report["titles_differ"] = _some(differ)
        a, b = stats["crawler"]["pages_per_s"], stats["scrapy"]["pages_per_s"]
        report["speedup"] = round(a / b, 2) if b else None
        a, b = (stats[w]["pages_per_s_in_span"] for w in ("crawler", "scrapy"))
        report["speedup_in_span"] = round(a / b, 2) if a and b else None
    return report


def _missing_files(on_disk: dict[str, str], found) -> dict[str, str]:
    """The files on disk whose URL is not in found (dir/index.html: nor dir/)."""
    return {url: path for url, path in on_disk.items() if url not in found and not (
        url.endswith("/index.html") and url[:-len("index.html")] in found)}


def _some(rows: list) -> dict:
    return {"count": len(rows), "examples": rows[:EXAMPLES]}


def raw(run: dict) -> dict:
    """A run's measurements for the JSON file, without the log and items themselves."""
    return {k: v for k, v in run.items() if k not in ("requests", "items", "failures")}


# -- printing and checking -------------------------------------------------------------------

ROWS = [("HTML pages found", "html_pages"), ("items (status 200)", "items_200"),
        ("requests (nginx log)", "requests"), ("URLs fetched twice", "fetched_twice"),
        ("wall s", "wall_s"), ("pages/s", "pages_per_s"),
        ("first to last request s", "fetch_span_s"),
        ("  pages/s in between", "pages_per_s_in_span"), ("CPU s", "cpu_s"),
        ("CPU ms/page", "cpu_ms_per_page"), ("peak RSS MB", "peak_rss_mb"),
        ("nginx CPU s", "server_cpu_s"), ("exit status", "exit_status")]


def print_site(report: dict) -> None:
    stats = report["crawlers"]
    print(f"{'':24}" + "".join(f"{who:>12}" for who in stats))
    for label, key in ROWS:
        print(f"{label:24}" + "".join(f"{str(s[key]):>12}" for s in stats.values()))
    for who, s in stats.items():
        extra = {"statuses": s["statuses"], "failures": s["failures"],
                 "fetched twice": s["fetched_twice_examples"],
                 "items written twice": s["items_twice"],
                 "items the server never sent": s["items_not_served"],
                 "HTML sent, no item (meta refresh?)": s["html_served_without_item"]}
        print(f"  {who}: " + "; ".join(f"{k} {v}" for k, v in extra.items() if v))
    for key in ("only_crawler", "only_scrapy", "titles_differ"):
        if key in report:
            print(f"  {key.replace('_', ' ')}: {report[key]['count']}"
                  + "".join(f"\n    {x}" for x in report[key]["examples"]))
    unseen = report["files_fetched_by_none"]
    print(f"  HTML files on disk that no crawl fetched (not linked?): {unseen['count']}"
          + "".join(f"\n    {x}" for x in unseen["examples"]), flush=True)


def print_summary(reports: dict[str, dict]) -> None:
    """One line per site, and all sites together (pages and times summed)."""
    rows = {name: r["crawlers"] for name, r in reports.items()}
    if len(rows) > 1:
        rows["all sites"] = {who: _total([c[who] for c in rows.values() if who in c])
                             for who in next(iter(rows.values()))}
    print(f"\n{'(ours/scrapy)':18} {'HTML pages':>11} {'only in one':>11} {'titles≠':>7} "
          f"{'twice':>5} {'pages/s':>13} {'x':>5} {'between 1st/last':>16} {'x':>5} "
          f"{'CPU ms/page':>12}")
    for name, crawls in rows.items():
        c, s = crawls["crawler"], crawls.get("scrapy")
        pair = (lambda key: f"{c[key]}/{s[key]}" if s else f"{c[key]}")
        ratio = (lambda key: round(c[key] / s[key], 1) if s and s[key] and c[key] else "")
        r = reports.get(name, {})
        only = f"{r['only_crawler']['count']}/{r['only_scrapy']['count']}" if "only_crawler" \
            in r else ""
        titles = r["titles_differ"]["count"] if "titles_differ" in r else ""
        print(f"{name:18} {pair('html_pages'):>11} {only:>11} {titles:>7} "
              f"{pair('fetched_twice'):>5} {pair('pages_per_s'):>13} "
              f"{ratio('pages_per_s'):>5} {pair('pages_per_s_in_span'):>16} "
              f"{ratio('pages_per_s_in_span'):>5} {pair('cpu_ms_per_page'):>12}")


def _total(stats: list[dict]) -> dict:
    pages, wall, span, cpu = (sum(s[k] for s in stats)
                              for k in ("items_200", "wall_s", "fetch_span_s", "cpu_s"))
    return {"html_pages": sum(s["html_pages"] for s in stats),
            "fetched_twice": sum(s["fetched_twice"] for s in stats),
            "pages_per_s": round(pages / wall, 1) if wall else 0.0,
            "pages_per_s_in_span": round(pages / span, 1) if span else None,
            "cpu_ms_per_page": round(1000 * cpu / pages, 2) if pages else None}


def verdicts(reports: dict[str, dict], complete: set[str]) -> list[str]:
    """Print every expectation that fails; return the correctness ones (speed is only
    printed: on a busy machine it is noise). `complete`: sites where every HTML file on
    disk is linked from the root, so our crawl must fetch them all."""
    failed, slow = [], []
    for name, r in reports.items():
        c = r["crawlers"]["crawler"]
        checks = {"our crawl exited 0": c["exit_status"] == 0,
                  "we fetched no URL twice": c["fetched_twice"] == 0,
                  "our items agree with the server's log": not (
                      c["items_twice"] or c["items_not_served"])}
        if name in complete:
            checks["we wrote a page for every HTML file"] = c["files_without_page"] == 0
        if "scrapy" in r["crawlers"]:
            checks["we found every HTML page Scrapy found"] = r["only_scrapy"]["count"] == 0
            checks["titles agree"] = r["titles_differ"]["count"] == 0
            if (r["speedup"] or 0) < SPEEDUP:
                slow.append(f"{name}: {r['speedup']}x Scrapy's pages/s (< {SPEEDUP:g}x)")
        failed += [f"{name}: {what}" for what, ok in checks.items() if not ok]
    for line in failed:
        print(f"FAILED {line}")
    for line in slow:
        print(f"slow: {line}")
    if not failed:
        print("all checks passed" + (" (speed aside)" if slow else ""))
    return failed
