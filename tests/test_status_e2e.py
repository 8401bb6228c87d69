"""Seeing a real crawl: master + local workers on a slow local site; the status server's
/stats.json and /metrics while it runs, the progress lines in a pipe and on a terminal, the
final stats.json, and `python -m crawler.status` on the job folder."""
from __future__ import annotations

import json
import os
import pty
import socket
import re
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from crawler.sitegen import Site
from procs import base_env, read_jsonl, terminal_lines, wait_for, write_seeds

SLOW = ["-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "-s", "LOGSTATS_INTERVAL=0.5"]


def status_url(proc, timeout: float = 15.0) -> str:
    text = proc.wait_output("status page: ", timeout)
    return re.search(r"status page: (\S+)", text).group(1)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def stats(url: str) -> dict:
    return json.loads(fetch(url + "stats.json"))


def test_status_server_and_progress_lines_follow_a_crawl(serve, project, procs, tmp_path):
    site = serve(Site(pages=60), delay=0.05)
    jobdir = tmp_path / "job"
    master = procs.master([write_seeds(project, site.url), "--workers", "2", "-o",
                           tmp_path / "out.jsonl", "--jobdir", jobdir, "--status",
                           "127.0.0.1:0", *SLOW], project)
    url = status_url(master)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url) and not url.endswith(":0/")
    first = wait_for(lambda: (s := stats(url))["pages_done"] > 0 and s, 20,
                     "a page done on /stats.json", describe=master.describe)
    later = wait_for(lambda: (s := stats(url))["pages_done"] > first["pages_done"] and s, 20,
                     "/stats.json to move on", describe=master.describe)
    assert later["state"] == "running" and later["spider"] == "generic"
    assert 0 < later["queued"] + later["in_flight"] <= 63
    assert [row["host"] for row in later["hosts"]["by_queue"]] in ([], ["127.0.0.1"])
    assert later["hosts"]["known"] == 1
    wait_for(lambda: len(stats(url)["workers"]) == 2, 20, "both local workers listed")
    for worker in stats(url)["workers"]:
        assert worker["address"].startswith("127.0.0.1:") and worker["pid"] > 0, worker
        assert worker["version"].startswith("0.1.0+") and worker["connected"], worker
        assert worker["threads"] == 128, worker  # CONCURRENT_REQUESTS (the cap): no -c given
    families = {f.name: f for f in text_string_to_metric_families(fetch(url + "metrics")
                                                                  .decode())}
    assert families["crawler_pages_done"].samples[0].value >= later["pages_done"]
    key = (jobdir / "authkey").read_text().strip()
    for path in ("", "stats.json", "metrics"):
        assert key not in fetch(url + path).decode(), f"the authkey is shown on /{path}"

    assert master.wait(60) == 0, master.describe()
    final = json.loads((jobdir / "stats.json").read_text())
    assert final["state"] == "over" and final["closed_by"] == "finished"
    assert final["pages_done"] == 63 == final["items"] == len(read_jsonl(tmp_path / "out.jsonl"))
    assert final["series"]["pages"][-1] == 63 and len(final["series"]["t"]) >= 2
    assert final["series"]["t"] == sorted(final["series"]["t"])
    assert final["bytes"] > 63 * 2000  # pages of about 2 KB
    # Progress lines in a pipe: plain log lines, from the master and from each worker.
    progress = re.findall(r"master INFO crawler\.status\.monitor: (\d+) pages \([\d.,]+/s\), "
                          r"(\d+) items .* queued, .* in flight, hosts \d+ with work/\d+ "
                          r"waiting on delay, \d+ workers, \d+ failed", master.stderr)
    assert len(progress) >= 2, master.stderr
    assert [int(p) for p, _ in progress] == sorted(int(p) for p, _ in progress)
    assert len(re.findall(r"worker\[\d+\] INFO worker \S+: \d+ pages \([\d.,]+/s\), "
                          r"\d+/\d+ threads busy, 0 reconnects", master.stderr)) >= 2
    assert "\r" not in master.stderr and "\x1b" not in master.stderr

    shown = subprocess.run([sys.executable, "-m", "crawler.status", str(jobdir), "--html",
                            str(tmp_path / "page.html")], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    summary = master.stdout[master.stdout.index("crawl finished"):].splitlines()
    assert shown.stdout.splitlines()[:len(summary)] == summary
    assert '"pages_done": 63' in (tmp_path / "page.html").read_text()


def test_stats_file_without_a_jobdir_and_no_status_page(serve, project, run_master, tmp_path):
    site = serve(Site(pages=10))
    proc = run_master([write_seeds(project, site.url), "--workers", "1", "-o",
                       tmp_path / "out.jsonl", "--status", "off", "--stats",
                       tmp_path / "s.json", "-s", "LOG_LEVEL=WARNING"])
    assert proc.returncode == 0, proc.describe()
    assert "status page" not in proc.stdout
    final = json.loads((tmp_path / "s.json").read_text())
    assert final["pages_done"] == 11 and final["schema"] == 1


def test_bad_status_address_is_a_usage_error(project, run_master, tmp_path):
    proc = run_master([write_seeds(project, "http://127.0.0.1:9/"), "--status", "nowhere"])
    assert proc.returncode == 2
    assert "error: --status/STATUS_BIND 'nowhere': expected HOST:PORT or off" in proc.stderr


def test_live_line_on_a_terminal_disappears_and_keeps_log_lines_whole(serve, project,
                                                                     tmp_path):
    site = serve(Site(pages=60), delay=0.05)
    seeds = write_seeds(project, site.url)
    main, child = pty.openpty()
    env = dict(base_env(tmp_path), TERM="xterm", COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "crawler.master", str(seeds), "--workers",
                             "2", "-o", str(tmp_path / "out.jsonl"), *SLOW], cwd=project,
                            env=env, stdin=subprocess.DEVNULL, stdout=child, stderr=child,
                            start_new_session=True)
    os.close(child)
    chunks = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        os.close(main)
    raw = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")
    assert "\r\x1b[K" in raw, raw[-2000:]  # a live line was drawn and erased
    # Replay the terminal: every line that stays on screen is whole, and no progress line
    # is left once the crawl is over.
    *lines, current = terminal_lines(raw)
    assert current == "", f"left on the last line: {current!r}"
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (master|worker\[\d+\]) ")
    logged = [line for line in lines if re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,", line)]
    assert any("worker" in line and "threads busy" in line for line in logged), lines
    for line in logged:
        assert stamp.match(line) and line.count(" INFO ") + line.count(" WARNING ") == 1, \
            f"a log line was cut or joined: {line!r}"
    assert not any(" pages (" in line and "queued" in line for line in lines), \
        "a live progress line stayed on screen"
    assert lines[-2].startswith("crawl finished: 63 pages done"), lines[-4:]


def test_status_port_in_use_is_a_clear_error(project, run_master, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_master([write_seeds(project, "http://127.0.0.1:9/"), "--workers", "1",
                           "--status", f"127.0.0.1:{port}"])
    assert proc.returncode != 0
    assert f"error: cannot listen on 127.0.0.1:{port} for the status page: " in proc.stderr, \
        proc.describe()
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "tmpdir").iterdir()), "a temporary key was left behind"
