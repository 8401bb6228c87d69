"""One master per JOBDIR: a second one started on the same JOBDIR is refused."""
import os
import signal
from pathlib import Path

from crawler.sitegen import Site
from procs import QUIET, write_seeds


def test_a_second_master_on_the_same_jobdir_is_refused(serve, project, procs, run_master,
                                                      tmp_path):
    site = serve(Site(pages=40, links=2), delay=0.2)  # slow: the first master is still busy
    seeds, jobdir = write_seeds(project, site.url), tmp_path / "job"
    first = procs.master([seeds, "--workers", 1, "-o", project / "a.jsonl", "--jobdir", jobdir,
                          *QUIET], project, "first")
    first.wait_output("master listening", 20)
    second = run_master([seeds, "--workers", 1, "-o", project / "a.jsonl", "--jobdir", jobdir,
                         *QUIET], name="second")
    assert second.returncode == 2, second.describe()
    assert f"in use by another master (pid {first.pid})" in second.stderr, second.describe()
    assert first.alive, first.describe()
    first.send(signal.SIGTERM)
    assert first.wait(30) == 130, first.describe()


def test_a_killed_master_frees_its_jobdir_while_its_local_workers_live(serve, project, procs,
                                                                       run_master, tmp_path):
    site = serve(Site(pages=40, links=2), delay=0.2)  # slow: the crawl is not over yet
    seeds, jobdir = write_seeds(project, site.url), tmp_path / "job"
    args = [seeds, "--workers", 2, "-o", project / "a.jsonl", "--jobdir", jobdir, *QUIET]
    first = procs.master(args, project, "first")
    first.wait_output("master listening", 20)
    workers = Path(f"/proc/{first.pid}/task/{first.pid}/children").read_text().split()
    assert len(workers) == 2, workers
    for pid in workers:  # stopped, they outlive the master for as long as the test likes
        os.kill(int(pid), signal.SIGSTOP)
    first.send(signal.SIGKILL)
    assert first.wait(5) == -signal.SIGKILL
    again = run_master(args, name="again", timeout=60)
    assert again.returncode == 0, again.describe()
    assert "in use by another master" not in again.stderr, again.describe()
    for pid in workers:
        os.kill(int(pid), signal.SIGKILL)
