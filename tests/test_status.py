"""crawler.status in-process: the frontier's and scheduler's snapshot, the history, the progress
lines, the live terminal line, /metrics (parsed strictly by prometheus_client), the status
server on 127.0.0.1 and `python -m crawler.status`."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crawler.frontier import DONE, FAILED, Frontier
from crawler.scheduler import Scheduler
from crawler.status import metrics, page, snapshot
from crawler.status.history import History
from crawler.status.live import LiveLine
from crawler.status.progress import WorkerMeter, master_line
from crawler.status.server import StatusServer
from crawler.status.summary import summary_lines
from procs import terminal_lines


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def task(host: str, path: str) -> dict:
    url = f"http://{host}/{path}"
    return {"url": url, "fp": url.encode(), "host": host, "depth": 0}


def crawl_state(clock: Clock) -> Scheduler:
    """A scheduler after: a.test 1 done, 1 failed, 2 in flight (w1), 3 queued; c.test 2
    failed (connection); b.test 1 in flight (w2), 1 queued behind its 10 s delay."""
    frontier = Frontier(per_host=2, clock=clock, rng=lambda: 0.5, retry_times=0,
                        robots_agent=None)
    sched = Scheduler(frontier, {}, lambda items: None, batch_size=64)
    sched.hello({"worker": "w1", "threads": 4, "pid": 11, "version": "v1"})
    sched.hello({"worker": "w2", "threads": 2, "pid": 22, "version": "v1"})
    frontier.admit([task("a.test", f"p{i}") for i in range(7)])
    frontier.admit([task("c.test", f"p{i}") for i in range(2)])
    a0, a1, c0, c1 = sched.lease("w1", 4)["tasks"]
    assert [t["url"] for t in (a0, a1, c0, c1)] == [
        "http://a.test/p0", "http://a.test/p1", "http://c.test/p0", "http://c.test/p1"]
    sched.put("w1", [
        {"lease": a0["lease"], "outcome": DONE, "status": 200, "bytes": 1000,
         "items": [{"url": a0["url"]}], "requests": []},
        {"lease": a1["lease"], "outcome": FAILED, "reason": "http_404x"},
        {"lease": c0["lease"], "outcome": "retry", "reason": "connection"},
        {"lease": c1["lease"], "outcome": "retry", "reason": "connection"}])
    assert len(sched.lease("w1", 2)["tasks"]) == 2  # a.test p2, p3
    frontier.throttle = type(frontier.throttle)(delay=10.0)
    frontier.admit([task("b.test", "x"), task("b.test", "y")])
    assert len(sched.lease("w2", 2)["tasks"]) == 1  # b.test: the next waits 10 s
    return sched


def test_frontier_snapshot_counts_hosts_and_failures():
    clock = Clock()
    snap = crawl_state(clock).snapshot(top=10)
    hosts = snap["hosts"]
    assert hosts["known"] == 3
    assert hosts["with_work"] == 2  # a.test (queued, 2 in flight), b.test; c.test is settled
    assert hosts["waiting"] == 1    # b.test, behind its delay
    rows = {row["host"]: row for row in hosts["by_queue"]}
    assert list(rows) == ["a.test", "b.test"]  # by queue: a.test 3, b.test 1
    assert rows["a.test"] == {"host": "a.test", "queued": 3, "in_flight": 2, "done": 1,
                              "failed": 1, "delay": 0.0, "next_in": 0.0, "robots": "off",
                              "last_error": "http_404x"}
    assert rows["b.test"]["next_in"] == pytest.approx(10.0)
    assert rows["b.test"]["delay"] == 10.0
    assert [r["host"] for r in hosts["by_failures"]] == ["c.test", "a.test"]
    assert hosts["by_failures"][0]["failed"] == 2
    assert snap["failure_examples"] == {"http_404x": ["http://a.test/p1"],
                                        "connection": ["http://c.test/p0", "http://c.test/p1"]}
    assert snap["stats"]["bytes"] == 1000
    assert snap["queued"] == 4 and snap["in_flight"] == 3


def test_snapshot_shows_only_the_top_hosts():
    frontier = Frontier(robots_agent=None)
    frontier.admit([task(f"h{i}.test", f"p{j}") for i in range(50) for j in range(i % 7)])
    snap = frontier.snapshot(top=5)
    queued = [row["queued"] for row in snap["hosts"]["by_queue"]]
    assert queued == [6, 6, 6, 6, 6]
    assert snap["hosts"]["by_failures"] == []  # no host has failed anything


def test_scheduler_snapshot_lists_workers_with_pages_and_leases():
    clock = Clock()
    snap = crawl_state(clock).snapshot(top=10)
    workers = {w["id"]: w for w in snap["workers"]}
    assert set(workers) == {"w1", "w2"}
    assert workers["w1"]["pages"] == 4 and workers["w1"]["leases"] == 2
    assert workers["w2"]["pages"] == 0 and workers["w2"]["leases"] == 1
    assert workers["w1"]["threads"] == 4 and workers["w1"]["pid"] == 11
    assert workers["w1"]["version"] == "v1"
    assert snap["workers_known"] == 2 and snap["closing"] is None


def compose(sched: Scheduler, items=3, **crawl) -> dict:
    return snapshot.compose(sched.snapshot(top=10), crawl={"spider": "s", "output": "o.jsonl",
                                                           "jobdir": None, **crawl},
                            seconds=2.0, done_before=0, items=items, items_dropped=0,
                            last_items=[{"url": "u", "body": "x" * 1000, "n": 1}],
                            connected_within=30.0)


def test_composed_snapshot_has_the_summary_fields():
    snap = compose(crawl_state(Clock()))
    assert snap["pages_done"] == 1 and snap["pages_failed"] == 3
    assert snap["failed_by_reason"] == {"http_404x": 1, "connection": 2}
    assert snap["state"] == "running" and snap["closed_by"] is None
    assert snap["workers_connected"] == 2
    assert snap["pages_per_second"] == 0.5
    assert len(snap["last_items"][0]["body"]) == 201 and snap["last_items"][0]["n"] == 1
    over = snapshot.finished(snap)
    assert over["state"] == "over" and over["closed_by"] == "finished"
    json.dumps(over)  # plain data all the way down


def fake_snap(t: float, pages: int, items: int, workers=()) -> dict:
    return {"seconds": t, "pages_done": pages, "items": items, "pages_failed": 0,
            "workers": [{"id": w, "pages": p} for w, p in workers]}


def test_history_rates_over_a_window():
    h = History()
    for t in range(11):
        h.add(fake_snap(float(t), 10 * t, 5 * t, [("w", 10 * t)]))
    r = h.rates(4.0)
    assert r["window"] == 4.0
    assert r["pages_per_second"] == 10.0 and r["items_per_second"] == 5.0
    assert r["worker_pages_per_second"] == {"w": 10.0}


def test_history_series_stays_bounded_and_keeps_the_ends():
    h = History(max_points=50)
    for t in range(1000):
        h.add(fake_snap(float(t), t, t))
    series = h.to_json()
    assert 25 <= len(series["t"]) <= 51
    assert series["t"][0] == 0.0 and series["t"][-1] == 999.0
    assert series["pages"][-1] == 999
    assert series["t"] == sorted(series["t"])


def test_master_progress_line():
    snap = compose(crawl_state(Clock()))
    line = master_line(snap, {"pages_per_second": 12.5, "items_per_second": 3.0})
    assert line == ("1 pages (12.5/s), 3 items (3.0/s), 4 queued, 3 in flight, hosts 2 with "
                    "work/1 waiting on delay, 2 workers, 3 failed (connection 2, http_404x 1)")


def test_worker_meter_logs_once_per_interval():
    meter = WorkerMeter(10.0, now=0.0)
    meter.pages = 30
    assert meter.line(5.0, 2, 4) is None
    assert meter.line(10.0, 2, 4) == "30 pages (3.0/s), 2/4 threads busy, 0 reconnects"
    meter.pages, meter.reconnects = 50, 1
    assert meter.line(15.0, 0, 4) is None
    assert meter.line(20.0, 0, 4) == "50 pages (2.0/s), 0/4 threads busy, 1 reconnects"
    assert WorkerMeter(0.0, now=0.0).line(1e9, 0, 1) is None  # 0: never


# -- /metrics --------------------------------------------------------------------------
def test_metrics_parse_strictly_with_the_values():
    snap = compose(crawl_state(Clock()))
    snap["failed_by_reason"]['odd "reason"\\\n'] = 7
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(snap))}
    def value(name, **labels):
        return [s.value for s in families[name].samples if s.labels == labels
                and not s.name.endswith("_created")]
    assert families["crawler_pages_done"].type == "counter"
    assert value("crawler_pages_done") == [1]
    assert value("crawler_pages_failed", reason="connection") == [2]
    assert value("crawler_pages_failed", reason='odd "reason"\\\n') == [7]
    assert value("crawler_bytes") == [1000]
    assert value("crawler_items") == [3]
    assert families["crawler_queued"].type == "gauge" and value("crawler_queued") == [4]
    assert value("crawler_in_flight") == [3]
    assert value("crawler_workers") == [2]
    assert value("crawler_hosts", state="waiting") == [1]
    assert value("crawler_hosts", state="known") == [3]


# -- the server ------------------------------------------------------------------------
@pytest.fixture
def status_server():
    servers = []

    def start(snap: dict, token: str | None = None) -> StatusServer:
        server = StatusServer(("127.0.0.1", 0), lambda: snap, token).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method,
                                     data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_server_serves_stats_metrics_and_the_page(status_server):
    snap = compose(crawl_state(Clock()))
    server = status_server(snap)
    status, ctype, body = get(server.url + "stats.json")
    assert (status, ctype) == (200, "application/json") and json.loads(body) == snap
    status, ctype, body = get(server.url + "metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert {f.name for f in text_string_to_metric_families(body.decode())} >= {
        "crawler_pages_done", "crawler_queued"}
    status, ctype, body = get(server.url)
    assert status == 200 and ctype.startswith("text/html")
    html = body.decode()
    assert "stats.json" in html and 'id="chart"' in html
    # Works with no internet: nothing is loaded from elsewhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "external resource"
    assert "@import" not in html and "url(" not in html
    assert get(server.url + "nothing")[0] == 404


def test_server_on_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    snap = compose(crawl_state(Clock()))
    server = StatusServer(("::1", 0), lambda: snap).start()
    try:
        assert server.url.startswith("http://[::1]:")
        assert json.loads(get(server.url + "stats.json")[2]) == snap
    finally:
        server.close()


def test_server_is_read_only(status_server):
    server = status_server(compose(crawl_state(Clock())))
    for path in ("", "stats.json", "metrics"):
        assert get(server.url + path, method="POST")[0] == 405


def test_server_with_a_token_refuses_requests_without_it(status_server):
    server = status_server(compose(crawl_state(Clock())), token="s3cret-token")
    for path in ("", "stats.json", "metrics"):
        assert get(server.url + path)[0] == 401
        assert get(server.url + path + "?token=wrong")[0] == 401
        assert get(server.url + path, {"Authorization": "Bearer wrong"})[0] == 401
        assert get(server.url + path + "?token=s3cret-token")[0] == 200
        assert get(server.url + path, {"Authorization": "Bearer s3cret-token"})[0] == 200


def test_server_encodes_each_snapshot_once(status_server):
    snaps = [compose(crawl_state(Clock()))]
    server = StatusServer(("127.0.0.1", 0), lambda: snaps[-1])
    try:
        first = server.rendered()
        assert server.rendered()[0] is first[0]  # same snapshot: the same bytes, not redone
        snaps.append(dict(snaps[0], pages_done=99))
        assert json.loads(server.rendered()[0])["pages_done"] == 99
    finally:
        server.server_close()


# -- the static page and the command line ------------------------------------------------
def test_static_page_embeds_data_that_cannot_end_its_script():
    snap = compose(crawl_state(Clock()))
    snap["last_items"] = [{"title": "</script><script>alert(1)</script><!--"}]
    html = page.static(snap)
    embedded = re.search(r'<script id="data" type="application/json">(.*?)</script>', html,
                         re.S).group(1)
    assert "<" not in embedded
    assert json.loads(embedded)["last_items"][0]["title"].startswith("</script>")


def test_status_command_prints_the_summary_and_writes_the_page(tmp_path):
    snap = snapshot.finished(compose(crawl_state(Clock())))
    (tmp_path / "stats.json").write_text(json.dumps(snap))
    out = tmp_path / "page.html"
    run = subprocess.run([sys.executable, "-m", "crawler.status", str(tmp_path), "--html",
                          str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[:len(summary_lines(snap))] == summary_lines(snap)
    assert run.stdout.startswith("crawl finished: 1 pages done, 3 failed, 3 items -> o.jsonl")
    assert '<script id="data"' in out.read_text()


@pytest.mark.parametrize("content", [None, "{not json", '{"pages_done": 1}'])
def test_status_command_refuses_what_is_not_a_stats_file(tmp_path, content):
    path = tmp_path / "stats.json"
    if content is not None:
        path.write_text(content)
    run = subprocess.run([sys.executable, "-m", "crawler.status", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith(f"error: {path}"), run.stderr


# -- the live line -------------------------------------------------------------------------
class Terminal(io.StringIO):
    """A tty-like stream; screen() is what stays on it."""

    def isatty(self) -> bool:
        return True

    def screen(self) -> list[str]:
        return terminal_lines(self.getvalue())


def test_live_line_keeps_log_lines_whole_and_leaves_nothing_behind(monkeypatch):
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    handler = logging.StreamHandler(term)
    root = logging.getLogger()
    root.addHandler(handler)
    live = LiveLine(term)
    try:
        live.capture()
        live.show("100 pages")
        logging.getLogger("t").warning("a log line")
        live.show("200 pages")
        print("partial", end="", file=sys.stderr)
        live.show("300 pages")  # not drawn in the middle of someone's line
        print(" and its end", file=sys.stderr)
        assert term.screen() == ["a log line", "partial and its end", "300 pages"]
        reader, writer = os.pipe()
        with open(writer, "wb") as w:
            w.write(b"worker line 1\nworker line 2\n")
        live.relay(open(reader, "rb")).join(5)
        assert term.screen()[-3:] == ["worker line 1", "worker line 2", "300 pages"]
    finally:
        live.close()
        root.removeHandler(handler)
    assert sys.stderr is term and handler.stream is term  # given back
    assert term.screen() == ["a log line", "partial and its end", "worker line 1",
                             "worker line 2", ""]


def test_live_line_fits_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    term = Terminal()
    live = LiveLine(term)
    live.show("x" * 100)
    assert len(term.screen()[-1]) == 19
    live.close()
    assert term.screen() == [""]


# -- the master's options ------------------------------------------------------------------
def plan_for(project, monkeypatch, *args):
    from crawler import plan
    from procs import write_seeds
    monkeypatch.chdir(project)
    seeds = write_seeds(project, "http://127.0.0.1:9/")
    return plan.prepare(plan.parse_args([str(seeds), *args]))


def test_status_page_on_loopback_by_default_without_a_token(project, monkeypatch):
    plan = plan_for(project, monkeypatch)
    assert plan.status == ("127.0.0.1", 0) and plan.status_token is None
    assert plan_for(project, monkeypatch, "--status", "off").status is None
    assert plan_for(project, monkeypatch, "-s", "STATUS_BIND=off").status is None
    assert plan_for(project, monkeypatch, "--status", "[::1]:8080").status_token is None


def test_status_page_elsewhere_requires_a_token(project, monkeypatch):
    monkeypatch.delenv("CRAWLER_STATUS_TOKEN", raising=False)
    made = plan_for(project, monkeypatch, "--status", "0.0.0.0:0").status_token
    again = plan_for(project, monkeypatch, "--status", "0.0.0.0:0").status_token
    assert made and again and made != again and len(made) >= 32  # random, one per crawl
    monkeypatch.setenv("CRAWLER_STATUS_TOKEN", "from-the-environment")
    assert plan_for(project, monkeypatch, "--status", "0.0.0.0:0").status_token == \
        "from-the-environment"
