"""One master per JOBDIR: a second one started on the same JOBDIR is refused."""
import signal

from crawler.sitegen import Site
from procs import QUIET, count_lines, read_jsonl, wait_for, write_seeds
from test_e2e import assert_one_item_per_page


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


def test_a_killed_master_leaves_its_jobdir_free_whatever_its_workers_do(
        serve, project, procs, run_master, tmp_path):
    """The lock dies with the master: its local workers hold no part of it, even while they
    cannot run (stopped here, so they cannot notice the master is gone)."""
    site = serve(Site(pages=40, links=2), delay=0.05)
    seeds, jobdir, out = write_seeds(project, site.url), tmp_path / "job", project / "a.jsonl"
    args = [seeds, "--workers", 2, "-o", out, "--jobdir", jobdir, *QUIET]
    first = procs.master(args, project, "first")
    wait_for(lambda: count_lines(out) >= 5, 20, "5 items", describe=first.describe)
    first.send(signal.SIGSTOP, group=True)  # the master and its workers
    first.send(signal.SIGKILL)              # the master alone
    assert first.wait(5) == -signal.SIGKILL, first.describe()
    second = run_master(args, name="second", timeout=60)
    assert second.returncode == 0, second.describe()
    assert_one_item_per_page(read_jsonl(out), site)
