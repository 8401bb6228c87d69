"""What the user is told: errors, warnings, exit statuses and hints, as a new user meets them.

Each test runs real `python -m crawler.master` / `crawler.worker` processes (procs.py) on
loopback and checks what they print and how they exit.
"""
from __future__ import annotations

import shlex
import signal
import socket
from multiprocessing import AuthenticationError

import pytest

from crawler.link import manager
from crawler.sitegen import Site
from procs import QUIET, count_lines, free_port, read_jsonl, wait_for, write_key, write_seeds
from test_e2e import listening_address, summary_line

INFO = ["-s", "LOG_LEVEL=INFO"]


def error_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


# -- the master's address ----------------------------------------------------------------------
def test_master_port_in_use_is_one_line_and_exit_2(site, project, run_master):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = project / "out.jsonl"
        master = run_master([write_seeds(project, site.url), "--bind", f"127.0.0.1:{port}",
                             "--workers", 1, "-o", out, *QUIET])
    assert master.returncode == 2, master.describe()
    assert error_lines(master) == [f"error: cannot listen on 127.0.0.1:{port}: "
                                   "Address already in use"], master.describe()
    assert not out.exists(), "output file created for a crawl that never started"
    assert site.log == []


# -- interrupting and resuming ------------------------------------------------------------------
def test_interrupt_says_how_to_resume_and_the_resume_says_what_it_resumes(serve, project, procs,
                                                                          tmp_path):
    site = serve(Site(pages=100, links=3), delay=0.05)
    out, jobdir = project / "out.jsonl", tmp_path / "job"
    first = procs.master([write_seeds(project, site.url), "--workers", 1, "-o", out,
                          "--jobdir", jobdir, "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *INFO],
                         project)
    wait_for(lambda: count_lines(out) >= 10, 20, "10 items in the output",
             describe=first.describe)
    first.send(signal.SIGINT)  # to the master alone: its local worker hears it from the master
    assert first.wait(20) == 130, first.describe()
    hint = [line for line in first.stdout.splitlines() if line.startswith("  to resume: ")]
    assert len(hint) == 1, first.describe()
    # The worker was stopped by the master: it does not claim the crawl is over.
    assert "crawl over" not in first.stderr, first.describe()
    assert "the master stopped the crawl (interrupted)" in first.stderr, first.describe()
    done = int(summary_line(first).group(2))

    command = shlex.split(hint[0][len("  to resume: "):])
    assert command[:3] == ["python", "-m", "crawler.master"], command
    second = procs.master(command[3:], project, name="resumed")  # the hint, as given
    assert second.wait(40) == 0, second.describe()
    assert f"resuming {jobdir}: {done} done, " in second.stdout, second.describe()
    queued = int(second.stdout.split(f"resuming {jobdir}: {done} done, ")[1].split()[0])
    assert queued >= 1, second.describe()
    assert summary_line(second).group(1, 2) == ("finished", str(len(site.site.paths())))
    assert "resuming" not in first.stdout, first.describe()


def test_interrupt_without_jobdir_says_it_cannot_be_resumed(serve, project, procs):
    site = serve(Site(pages=100, links=3), delay=0.05)
    out = project / "out.jsonl"
    master = procs.master([write_seeds(project, site.url), "--workers", 1, "-o", out,
                           "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *QUIET], project)
    wait_for(lambda: count_lines(out) >= 5, 20, "5 items in the output",
             describe=master.describe)
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()
    assert "  this crawl cannot be resumed: it ran without --jobdir" in master.stdout, \
        master.describe()
    assert "to resume" not in master.stdout, master.describe()


# -- appending to an existing output ----------------------------------------------------------------
def test_rerun_appending_to_output_warns_and_says_appended(site, project, run_master):
    seeds, out = write_seeds(project, site.url), project / "out.jsonl"
    total = len(site.site.paths())
    first = run_master([seeds, "--workers", 1, "-o", out, *QUIET], name="first")
    assert first.returncode == 0, first.describe()
    assert summary_line(first).group(4, 5) == (str(total), str(out)), first.describe()
    assert "warning" not in first.stderr, first.describe()

    second = run_master([seeds, "--workers", 1, "-o", out, *QUIET], name="second")
    assert second.returncode == 0, second.describe()
    assert f"warning: {out} already holds {total} items; this crawl's are appended" \
        in second.stderr, second.describe()
    assert f", {total} items appended to {out} (which held {total} before)\n" \
        in second.stdout, second.describe()
    assert len(read_jsonl(out)) == 2 * total


# -- workers waiting for their master -------------------------------------------------------------
def test_worker_waiting_for_its_master_says_so_once(procs, project, tmp_path):
    key = write_key(tmp_path / "k")
    worker = procs.worker(f"127.0.0.1:{free_port()}", key, cwd=project, max_wait=3)
    assert worker.wait(15) == 1, worker.describe()
    waiting = [line for line in worker.stderr.splitlines() if "waiting for master" in line]
    assert len(waiting) == 1, worker.describe()
    assert "ConnectionRefusedError" in waiting[0], worker.describe()  # and why
    assert "giving up" in worker.stderr, worker.describe()


def test_worker_with_a_missing_key_file_and_a_running_master_exits_2(site, project, procs,
                                                                    tmp_path):
    address = f"127.0.0.1:{free_port()}"
    master = procs.master([write_seeds(project, site.url), "--bind", address, "--authkey-file",
                           write_key(tmp_path / "k"), "--workers", 0, *QUIET], project)
    listening_address(master)
    missing = tmp_path / "no-such.key"
    worker = procs.worker(address, missing, cwd=project)
    assert worker.wait(15) == 2, worker.describe()
    assert f"error: authkey file {missing} does not exist" in worker.stderr, worker.describe()
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()


# -- exit statuses ---------------------------------------------------------------------------------
def test_unknown_output_format_exits_2(site, project, run_master):
    out = project / "out.txt"
    master = run_master([write_seeds(project, site.url), "--workers", 1, "-o", out, *QUIET])
    assert master.returncode == 2, master.describe()
    assert error_lines(master) == [f"error: -o {out}: unknown format .txt; name one (jsonlines, "
                                   "json, csv, xml) or use one of .jsonl, .jl, .jsonlines, "
                                   ".json, .csv, .xml"], master.describe()
    assert not out.exists()


def test_finished_jobdir_rerun_is_nothing_to_do_and_exit_0(site, project, run_master, tmp_path):
    args = [write_seeds(project, site.url), "--workers", 1, "-o", project / "out.jsonl",
            "--jobdir", tmp_path / "job", *QUIET]
    assert run_master(args, name="first").returncode == 0
    fetched = len(site.log)
    again = run_master(args, name="again")
    assert again.returncode == 0, again.describe()
    assert again.stdout.startswith(f"nothing to do: the crawl in {tmp_path / 'job'} has "
                                   "finished"), again.describe()
    assert again.stderr == "", again.describe()
    assert len(site.log) == fetched


def test_workers_0_without_a_key_file_is_refused(site, project, procs, run_master, tmp_path):
    seeds = write_seeds(project, site.url)
    master = run_master([seeds, "--workers", 0, *QUIET])
    assert master.returncode == 2, master.describe()
    assert "--authkey-file" in master.stderr, master.describe()
    assert "master listening" not in master.stdout, master.describe()
    # With a JOBDIR the key has a known path, JOBDIR/authkey: remote workers can join.
    jobdir = tmp_path / "job"
    master = procs.master([seeds, "--workers", 0, "--jobdir", jobdir, *QUIET], project,
                          name="with-jobdir")
    address = listening_address(master)
    master.wait_output(f"remote workers: python -m crawler.worker {address} --authkey-file "
                       f"{jobdir / 'authkey'}\n", 10)
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()
    assert site.log == []


# -- start URLs -----------------------------------------------------------------------------------
STARTS_SPIDER = '''
from crawler import Spider


class StartsSpider(Spider):
    name = "starts"
    start_urls = [{url!r}]
    custom_settings = {{"DEPTH_LIMIT": 1}}

    def parse(self, response):
        yield {{"url": response.url}}
'''


def test_empty_seeds_file_is_refused_naming_it(site, project, run_master):
    (project / "spiders" / "starts.py").write_text(STARTS_SPIDER.format(url=site.url))
    empty = write_seeds(project, "# nothing here yet", name="empty.txt")
    master = run_master([empty, "--spider", "starts", "--workers", 1, *QUIET], name="empty")
    assert master.returncode == 2, master.describe()
    assert error_lines(master) == [f"error: seeds file {empty} holds no URLs (without a seeds "
                                   "file, the spider's start_urls are used)"], master.describe()
    assert site.log == []
    master = run_master(["--spider", "starts", "--workers", 1, *QUIET], name="start-urls")
    assert master.returncode == 0, master.describe()
    master = run_master(["--workers", 1, *QUIET], name="generic")
    assert master.returncode == 2, master.describe()
    assert error_lines(master) == ["error: no start URLs: give a seeds file or set start_urls "
                                   "on the spider"], master.describe()


# -- what the master logs about workers -------------------------------------------------------------
@pytest.mark.parametrize("autoscale, joined", [
    ("true", " joined (threads sized by the autoscaler, up to 3)"),
    ("false", " joined (3 threads)")])
def test_local_worker_joins_with_its_real_thread_count(autoscale, joined, site, project,
                                                        run_master):
    master = run_master([write_seeds(project, site.url), "--workers", 1, "-o",
                         project / "out.jsonl", "-s", "CONCURRENT_REQUESTS=3",
                         "-s", f"AUTOSCALE_ENABLED={autoscale}", *INFO])
    assert master.returncode == 0, master.describe()
    assert joined in master.stderr, master.describe()
    assert "None" not in master.stderr, master.describe()


def test_refused_worker_is_logged_as_refused_not_joined(site, project, procs, tmp_path):
    address, key = f"127.0.0.1:{free_port()}", write_key(tmp_path / "k")
    master = procs.master([write_seeds(project, site.url), "--spider", "books", "--bind",
                           address, "--authkey-file", key, "--workers", 0, *INFO], project)
    listening_address(master)
    other = tmp_path / "other-project"
    other.mkdir()
    (other / "spiders").mkdir()
    (other / "spiders" / "__init__.py").write_text("")
    books = (project / "spiders" / "books.py").read_text()
    (other / "spiders" / "books.py").write_text(books + "\n# changed on this host\n")
    worker = procs.worker(address, key, cwd=other)
    assert worker.wait(15) == 2, worker.describe()
    assert "differs from the master's" in worker.stderr, worker.describe()
    master.wait_output("refused: spider 'books' differs from the master's", 10, "stderr")
    assert "joined" not in master.stderr, master.describe()
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()


def test_wrong_authkey_attempts_are_logged_rate_limited(site, project, procs, tmp_path):
    port = free_port()
    master = procs.master([write_seeds(project, site.url), "--bind", f"127.0.0.1:{port}",
                           "--authkey-file", write_key(tmp_path / "k"), "--workers", 0, *QUIET],
                          project)
    listening_address(master)
    for _ in range(20):
        with pytest.raises(AuthenticationError):
            manager.connect(("127.0.0.1", port), b"not the key of this crawl at all")
    master.wait_output("refused a connection from 127.0.0.1:", 10, "stderr")
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()
    refused = [line for line in master.stderr.splitlines() if "refused a connection" in line]
    assert len(refused) == 1, master.describe()
    assert refused[0].endswith(": wrong authkey"), refused


# -- the failures file --------------------------------------------------------------------------
def test_failures_file_is_named_after_the_output(project, run_master, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/"
    out = tmp_path / "results" / "out.jsonl"
    out.parent.mkdir()
    master = run_master([write_seeds(project, dead), "--workers", 1, "-o", out,
                         "-s", "RETRY_TIMES=0", "-s", "ROBOTSTXT_OBEY=false", *QUIET])
    assert master.returncode == 0, master.describe()
    failures = tmp_path / "results" / "out.jsonl.failures.tsv"
    assert failures.read_text() == f"connection\t{dead}\n"
    assert f"  failures listed in {failures}\n" in master.stdout, master.describe()
