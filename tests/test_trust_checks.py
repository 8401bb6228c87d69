"""The master checks what workers send before applying any of it: host and fingerprint
against the URL, depth an int (the page's or one more), only http(s) URLs of bounded length,
items dicts of plain data, only known counters, a lease settled only by the worker that
took it (from the address it said hello from), and a batch applied all or nothing."""
from __future__ import annotations

import hashlib
import math

import pytest

from crawler.frontier import Frontier
from crawler.http.request import Request
from crawler.scheduler import Scheduler
from crawler.link.wire import ProtocolError
from crawler.link.wirecheck import Checks
from procs import QUIET, free_port, read_jsonl, write_key, write_seeds
from rogue import RawPeer
from test_e2e import assert_one_item_per_page, listening_address, summary_line


class Crawl:
    """A scheduler with two pages leased to worker w1."""

    def __init__(self) -> None:
        self.frontier = Frontier()
        self.emitted: list = []
        self.scheduler = Scheduler(self.frontier, {}, self.emitted.extend, batch_size=10,
                                   checks=Checks(url_limit=100, depth_limit=3))
        self.scheduler.admit([Request("http://a.test/1").to_task(0),
                              Request("http://a.test/2").to_task(0)])
        self.leases = [t["lease"] for t in self.scheduler.lease("w1", 2)["tasks"]]

    def result(self, lease: int = 0, **changes) -> dict:
        link = Request("http://a.test/next").to_task(1)
        result = {"lease": self.leases[lease], "outcome": "done", "status": 200,
                  "latency": 0.01, "bytes": 10, "items": [{"title": "t", "n": [1, 2.5]}],
                  "requests": [link], "dropped": {"offsite": 2}}
        result.update(changes)
        return result

    def untouched(self) -> bool:
        """Nothing of a refused batch was applied."""
        return (self.frontier.leased == 2 and not self.emitted
                and self.frontier.stats["done"] == 0 and self.frontier.stats["admitted"] == 2
                and "dropped/offsite" not in self.frontier.stats)


def link(**changes) -> dict:
    task = Request("http://a.test/next").to_task(1)
    task.update(changes)
    return task


def with_host(url: str, host: str) -> dict:
    """The link to `url` (its own fingerprint) claiming `host` as its host."""
    return link(**dict(Request(url).to_task(1), host=host))


BAD_RESULTS = {
    "host not the URL's": {"requests": [link(host="b.test")]},
    "host with the URL's user info": {"requests": [with_host("http://a.test@b.test/n",
                                                            "a.test@b.test")]},
    "host with the URL's port": {"requests": [with_host("http://a.test:81/n", "a.test:81")]},
    "host the user info of a URL with a port": {
        "requests": [with_host("http://a.test:81@b.test/n", "a.test")]},
    "fp not the URL's": {"requests": [link(fp=b"\0" * 16)]},
    "file URL": {"requests": [link(url="file:///etc/passwd", host="")]},
    "10 MB URL": {"requests": [link(url="http://a.test/" + "x" * 10_000_000)]},
    "depth NaN": {"requests": [link(depth=math.nan)]},
    "depth a string": {"requests": [link(depth="1")]},
    "depth jumps": {"requests": [link(depth=2)]},
    "depth beyond DEPTH_LIMIT": {"requests": [link(depth=4)]},
    "a request naming master fields": {"requests": [link(robots=True)]},
    "an item not a dict": {"items": [["not", "a", "dict"]]},
    "an item holding a set": {"items": [{"tags": {"a", "b"}}]},
    "an item with a non-string key": {"items": [{1: "x"}]},
    "a counter not known": {"dropped": {"made_up": 5}},
    "a negative counter": {"dropped": {"offsite": -1}},
    "an outcome not known": {"outcome": "great"},
    "latency NaN": {"latency": math.nan},
    "robots rules for a page": {"robots": "User-agent: *\nDisallow: /\n"},
}


@pytest.mark.parametrize("what", sorted(BAD_RESULTS))
def test_a_batch_with_one_bad_result_is_refused_whole(what, caplog):
    crawl = Crawl()
    good, bad = crawl.result(0), crawl.result(1, **BAD_RESULTS[what])
    assert crawl.scheduler.put("w1", [good, bad]) == []
    assert crawl.untouched()
    assert "refused a result batch from worker w1" in caplog.text


# A recrawl's unchanged page (a 304) carries only outcome, status, latency, bytes and lease:
# those few are checked in line, anything more as in any result.
BAD_UNCHANGED = {
    "latency NaN": {"latency": math.nan},
    "a negative byte count": {"bytes": -1},
    "a lease id not a string": {"lease": 7},
    "an outcome not known": {"outcome": "great"},
    "no outcome": {"outcome": None},
    "an item holding a set": {"items": [{"tags": {"a", "b"}}]},
    "a link not the URL's host": {"requests": [link(host="b.test")]},
}


@pytest.mark.parametrize("what", sorted(BAD_UNCHANGED))
def test_an_unchanged_page_with_anything_wrong_is_refused_too(what):
    crawl = Crawl()
    unchanged = {"lease": crawl.leases[1], "outcome": "done", "status": 304, "latency": 0.01,
                 "bytes": 0}
    unchanged.update(BAD_UNCHANGED[what])
    if unchanged["outcome"] is None:
        del unchanged["outcome"]
    assert crawl.scheduler.put("w1", [crawl.result(0), unchanged]) == []
    assert crawl.untouched()


def test_an_unchanged_page_is_settled():
    crawl = Crawl()
    unchanged = {"lease": crawl.leases[1], "outcome": "done", "status": 304, "latency": 0.01,
                 "bytes": 0}
    assert crawl.scheduler.put("w1", [unchanged]) == [crawl.leases[1]]
    assert crawl.frontier.stats["done"] == 1 and crawl.frontier.leased == 1


def test_a_result_without_an_outcome_leaves_its_good_neighbour_unsettled():
    """The bug: the good result's lease was settled and journaled while its item was never
    written and its links never admitted (KeyError 'outcome' half-way through)."""
    crawl = Crawl()
    broken = crawl.result(1)
    del broken["outcome"]
    assert crawl.scheduler.put("w1", [crawl.result(0), broken]) == []
    assert crawl.untouched()
    assert crawl.scheduler.put("w1", [crawl.result(0), crawl.result(1)]) == crawl.leases
    assert crawl.frontier.stats["done"] == 2 and len(crawl.emitted) == 2


def test_a_lease_is_settled_only_by_the_worker_that_took_it():
    crawl = Crawl()
    crawl.scheduler.lease("w2", 0)
    assert crawl.scheduler.put("w2", [crawl.result(0)]) == []
    assert crawl.untouched()
    assert crawl.scheduler.put("w1", [crawl.result(0)]) == [crawl.leases[0]]


def test_a_good_batch_is_taken_with_its_items_links_and_counters():
    crawl = Crawl()
    assert crawl.scheduler.put("w1", [crawl.result(0), crawl.result(1)]) == crawl.leases
    assert [item for _, item in crawl.emitted] == [{"title": "t", "n": [1, 2.5]}] * 2
    assert crawl.frontier.stats["admitted"] == 3  # the link, once
    assert crawl.frontier.stats["dropped/offsite"] == 4


@pytest.mark.parametrize("url", [
    "http://a.test/p?b=2&a=1", "http://a.test/p;jsessionid=x/q", "http://a.test:8080/p",
    "http://user:pw@a.test/p", "http://[::1]/p", "https://a.test/%7Euser/p?utm_source=x",
])
def test_links_as_workers_make_them_are_taken(url):
    crawl = Crawl()
    links = [Request(url).to_task(1, ("utm_*",)),
             Request(url, method="POST", body=b"x").to_task(1, ("utm_*",))]
    crawl.scheduler.checks = Checks(("utm_*",))
    assert crawl.scheduler.put("w1", [crawl.result(0, requests=links)]) == [crawl.leases[0]]
    assert crawl.frontier.stats["admitted"] == 4


def test_a_fingerprint_that_skips_the_dedup_form_is_refused():
    """A fragment (or a tab) is not part of a URL's dedup form: a fingerprint made of the
    whole string would let the same page in twice."""
    crawl = Crawl()
    for url in ("http://a.test/p#x", "http://a.test/p\tq"):
        forged = link(url=url, fp=hashlib.blake2b(url.encode(), digest_size=16).digest())
        assert crawl.scheduler.put("w1", [crawl.result(0, requests=[forged])]) == []
    assert crawl.untouched()


@pytest.mark.parametrize("call", [
    lambda s: s.lease("w1", "5"), lambda s: s.lease("w1", -1), lambda s: s.lease("w1", 1, 7),
    lambda s: s.lease(None, 1), lambda s: s.hello({"worker": 5}), lambda s: s.hello("w"),
    lambda s: s.hello({"worker": "w", "threads": 1.5}), lambda s: s.bye("w1", 3),
])
def test_malformed_calls_are_refused(call):
    crawl = Crawl()
    with pytest.raises(ProtocolError):
        call(crawl.scheduler)
    assert crawl.frontier.leased == 2


# -- against a real master ---------------------------------------------------------------------
def test_a_peer_with_the_key_cannot_pass_for_a_worker_from_elsewhere(site, project, procs,
                                                                     tmp_path):
    key = write_key(tmp_path / "key")
    out = project / "out.jsonl"
    master = procs.master([write_seeds(project, site.url), "--bind", f"127.0.0.1:{free_port()}",
                           "--authkey-file", key, "--workers", 0, "-o", out,
                           "-s", "LEASE_TIMEOUT=2", *QUIET], project)
    address = listening_address(master)
    host, port = address.rsplit(":", 1)
    where, secret = (host, int(port)), key.read_bytes().strip()
    queue, results, control = (ident_of(where, secret, name)
                                for name in ("url_queue", "result_queue", "control"))
    here, elsewhere = session(where, secret, "127.0.0.1"), session(where, secret, "127.0.0.2")
    assert here.call((control, "hello", ({"worker": "w-here"},), {}))[0] == "#RETURN"
    kind, text = elsewhere.call((queue, "lease", ("w-here", 10, []), {}))
    assert kind == "#TRACEBACK" and "said hello from 127.0.0.1, not 127.0.0.2" in text
    kind, reply = here.call((queue, "lease", ("w-here", 10, []), {}))
    assert kind == "#RETURN" and reply["tasks"], reply
    forged = [{"lease": t["lease"], "outcome": "done", "status": 200, "items": [{1: "x"}]}
              for t in reply["tasks"]]
    assert here.call((results, "put", ("w-here", forged), {})) == ("#RETURN", [])
    master.wait_output("refused a result batch from worker w-here", 10, "stderr")
    for peer in (here, elsewhere):
        peer.close()
    # The crawl goes on: the refused leases expire and a real worker takes them.
    worker = procs.worker(address, key, ["-c", 4], cwd=project)
    for proc in (worker, master):
        assert proc.wait(30) == 0, proc.describe()
    assert summary_line(master).group(1, 3) == ("finished", "0"), master.describe()
    assert_one_item_per_page(read_jsonl(out), site)


def session(address: tuple[str, int], secret: bytes, source: str) -> RawPeer:
    """An authenticated connection served as a proxy's (method calls by object id)."""
    peer = RawPeer(address, source=source)
    peer.authenticate(secret)
    assert peer.call((None, "accept_connection", ("rogue",), {})) == ("#RETURN", None)
    return peer


def ident_of(address: tuple[str, int], secret: bytes, name: str) -> str:
    """The id of a registered object, as a proxy learns it."""
    peer = RawPeer(address)
    peer.authenticate(secret)
    kind, (ident, _) = peer.call((None, "create", (name,), {}))
    peer.close()
    return ident


@pytest.mark.parametrize("url", ["http://a.test:8080/next", "https://a.test/next",
                                 "http://a-b_c.test:1/x?q=1", "http://a.test:8080"])
def test_links_with_a_port_or_a_query_are_taken_with_their_host(url):
    crawl = Crawl()
    task = Request(url).to_task(1)
    assert task["host"] == url.split("//")[1].split(":")[0].split("/")[0]
    assert crawl.scheduler.put("w1", [crawl.result(0, requests=[task])]) == [crawl.leases[0]]
    assert crawl.frontier.stats["admitted"] == 3
