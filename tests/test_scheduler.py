"""crawler.scheduler.Scheduler in one process: the end of a crawl is decided under the lock."""
import threading
import time

from crawler.frontier import Frontier
from crawler.http.request import Request
from crawler.scheduler import Scheduler


class PausingFrontier(Frontier):
    """Stops inside admit() of a result's links until told to go on."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.go, self.pause = threading.Event(), threading.Event(), False

    def admit(self, tasks):
        if self.pause:
            self.inside.set()
            assert self.go.wait(10), "the test never let admit() go on"
        return super().admit(tasks)


class ObservedLock:
    """A lock that tells when someone had to wait for it."""

    def __init__(self) -> None:
        self._lock, self.waited = threading.Lock(), threading.Event()

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            self.waited.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def test_the_end_is_not_seen_between_settling_a_lease_and_admitting_its_links():
    frontier = PausingFrontier()
    scheduler = Scheduler(frontier, {}, lambda items: None, batch_size=10)
    scheduler.lock = ObservedLock()
    scheduler.admit([Request("http://a.test/").to_task(0)])
    [task] = scheduler.lease("w", 1)["tasks"]
    link = Request("http://a.test/next").to_task(1)
    frontier.pause = True
    put = threading.Thread(target=scheduler.put, args=(
        "w", [{"lease": task["lease"], "outcome": "done", "status": 200, "items": [],
               "requests": [link]}]))
    put.start()
    assert frontier.inside.wait(10)  # the last lease is settled, its link not yet admitted
    seen: list[bool] = []
    looker = threading.Thread(target=lambda: seen.append(scheduler.over()))
    looker.start()
    deadline = time.monotonic() + 10  # until the looker has answered or waits for the lock
    while looker.is_alive() and not scheduler.lock.waited.is_set():
        assert time.monotonic() < deadline, "over() neither answered nor waited"
        time.sleep(0.001)
    frontier.go.set()
    put.join(10)
    looker.join(10)
    assert seen == [False]  # the link was queued: the crawl is not over
    assert [t["url"] for t in scheduler.lease("w", 5)["tasks"]] == ["http://a.test/next"]


def test_a_worker_meeting_the_master_after_the_end_is_told_so_in_the_hello_reply():
    # The master stops answering once every worker it knows heard the end; one that said
    # hello after that would otherwise wait for a master that is gone (CI, 2026-12-03).
    scheduler = Scheduler(Frontier(), {"spider": "generic"}, lambda items: None, batch_size=10)
    scheduler.admit([Request("http://a.test/").to_task(0)])
    assert not scheduler.hello({"worker": "early", "threads": 2}).get("done")
    [task] = scheduler.lease("early", 1)["tasks"]
    scheduler.put("early", [{"lease": task["lease"], "outcome": "done", "status": 200,
                             "items": [], "requests": []}])
    assert scheduler.over()
    reply = scheduler.hello({"worker": "late", "threads": 2})
    assert (reply["done"], reply["closed_by"], reply["spider"]) == (True, "finished", "generic")
    assert scheduler.workers_pending(60) == ["early"]  # the late one needs no waiting for
