"""One master per JOBDIR: a second one started on the same JOBDIR is refused."""
import signal

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
