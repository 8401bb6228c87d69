"""WARC output: request and response records of every fetch, read back with warcio; revisit
records on a recrawl; rotation; every record exactly once across a master SIGKILL."""
import glob
import signal
from collections import Counter

import pytest

from crawler.sitegen import Site
from procs import QUIET, base_env, count_lines, wait_for, write_seeds
from test_faults import Cluster, assert_crawl_complete

warcio = pytest.importorskip("warcio")
from warcio.archiveiterator import ArchiveIterator  # noqa: E402

NO_ROBOTS = ["-s", "ROBOTSTXT_OBEY=false"]


def read_warc(*paths):
    """Every record of the files, as (type, uri, http status or None, payload, record)."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            for record in ArchiveIterator(f):  # raises on a torn or malformed record
                status = record.http_headers.get_statuscode() if record.http_headers and \
                    record.rec_type != "request" else None
                out.append((record.rec_type, record.rec_headers.get_header("WARC-Target-URI"),
                            status, record.content_stream().read(), record))
    return out


def warc_files(folder, stem="crawl"):
    """The rotated files in their order: crawl.warc.gz, crawl-00001.warc.gz, ..."""
    return [str(folder / f"{stem}.warc.gz")] + sorted(glob.glob(str(folder /
                                                                    f"{stem}-*.warc.gz")))


def test_every_fetch_is_a_request_and_a_response_record(serve, project, run_master):
    site = serve(Site(pages=20, links=2))
    proc = run_master([write_seeds(project, site.url), "--workers", 1, "-o",
                       project / "crawl.warc.gz", "-o", project / "items.jsonl", *QUIET])
    assert proc.returncode == 0, proc.describe()
    records = read_warc(project / "crawl.warc.gz")
    assert records[0][0] == "warcinfo"
    base = site.url.rstrip("/")
    pages = {base + p: site.site.render(p)[2] for p in site.site.paths()}
    responses = {uri: (status, body) for kind, uri, status, body, _ in records
                 if kind == "response"}
    assert responses == {uri: ("200", body) for uri, body in pages.items()} | \
        {base + "/robots.txt": ("404", site.site.render("/robots.txt")[2])}
    requests = [r for r in records if r[0] == "request"]
    assert Counter(uri for _, uri, _, _, _ in requests) == Counter(set(responses))
    ids = {r[4].rec_headers.get_header("WARC-Record-ID"): r[1] for r in records
           if r[0] == "response"}
    for _, uri, _, _, record in requests:  # each request names its response
        assert ids[record.rec_headers.get_header("WARC-Concurrent-To")] == uri
        assert record.http_headers.protocol == "GET"
    assert count_lines(project / "items.jsonl") == len(pages)  # items went to their feed


def test_a_recrawl_writes_revisit_records_for_what_did_not_change(serve, project, run_master,
                                                                  tmp_path):
    site = serve(Site(pages=10, links=2))
    seeds, jobdir = write_seeds(project, site.url), tmp_path / "job"
    first = run_master([seeds, "--workers", 1, "--jobdir", jobdir, "-o",
                        project / "a.warc.gz", *NO_ROBOTS, *QUIET])
    assert first.returncode == 0, first.describe()
    site.extra["/book/4.html"] = lambda: (200, "text/html", b"<title>new text</title>")
    second = run_master([seeds, "--workers", 1, "--jobdir", jobdir, "--recrawl", "-o",
                         project / "b.warc.gz", *NO_ROBOTS, *QUIET], name="recrawl")
    assert second.returncode == 0, second.describe()
    base = site.url.rstrip("/")
    found = {(kind, uri): (status, body, record) for kind, uri, status, body, record
             in read_warc(project / "b.warc.gz") if kind != "request"}
    assert found.pop(("response", base + "/book/4.html"))[:2] == \
        ("200", b"<title>new text</title>")
    assert {uri for kind, uri in found if kind == "revisit"} == \
        {base + p for p in site.site.paths()} - {base + "/book/4.html"}
    revisits = [(status, body, record.rec_headers.get_header("WARC-Profile"))
                for (kind, _), (status, body, record) in found.items() if kind == "revisit"]
    assert revisits
    assert {(status, body) for status, body, _ in revisits} == {("304", b"")}
    assert all(profile.endswith("/revisit/server-not-modified") for _, _, profile in revisits)


def test_warc_records_exactly_once_across_a_master_kill_with_rotation(serve, project, procs,
                                                                      tmp_path):
    site = serve(Site(pages=80, links=3), delay=0.1)
    out = project / "crawl.warc.gz"
    cluster = Cluster(procs, project, tmp_path, site, "-o", out, "-s", "WARC_MAX_SIZE=20000")
    first = cluster.master()
    workers = [cluster.worker(), cluster.worker()]
    wait_for(lambda: count_lines(cluster.out) >= 15, 20, "15 items in the output",
             describe=first.describe)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    assert count_lines(cluster.out) < len(site.site.paths()), "over before the kill"
    second = cluster.master()
    assert second.wait(60) == 0, second.describe()
    for worker in workers:
        assert worker.wait(15) == 0, worker.describe()
    assert_crawl_complete(cluster.out, site, cluster.stats())
    files = warc_files(project)
    assert len(files) > 3  # rotated, and resumed across rotations
    records = read_warc(*files)
    base = site.url.rstrip("/")
    pages = Counter(uri for kind, uri, _, _, _ in records
                    if kind == "response" and not uri.endswith("/robots.txt"))
    assert pages == Counter({base + p: 1 for p in site.site.paths()})
    assert [kind for kind, *_ in read_warc(files[1])][0] == "warcinfo"


def test_without_warcio_a_warc_output_is_refused_before_anything_starts(project, run_master,
                                                                         site, tmp_path):
    fake = tmp_path / "nowarcio" / "warcio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no warcio here')\n")
    env = base_env(tmp_path / "tmpdir")
    env["PYTHONPATH"] = str(fake.parent)
    proc = run_master([write_seeds(project, site.url), "-o", project / "crawl.warc.gz",
                       *QUIET], env=env)
    assert proc.returncode == 2, proc.describe()
    assert "pip install 'crawler[warc]'" in proc.stderr
    assert not (project / "crawl.warc.gz").exists()
