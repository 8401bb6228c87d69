"""What only the Redis frontier does: batched settling (one links section per batch of
results), AutoThrottle inside the settle step, scripts loaded again after Redis lost them,
shards. A real redis-server on a free loopback port (skipped loudly without one); the
behaviour both backends share is in tests/test_frontier.py."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.frontier import DONE  # noqa: E402
from crawler.frontier.throttle import Throttle  # noqa: E402
import test_frontier  # noqa: E402
from test_frontier import Clock, build, task, urls  # noqa: E402

redis_server = test_frontier.redis_server  # the same fixture: a server for the module


@pytest.fixture
def make(request):
    return lambda clock=None, **kwargs: build("redis", request, clock, **kwargs)


def result(lease_id, *links, **extra):
    return dict({"lease": lease_id, "outcome": DONE, "status": 200, "requests": list(links)},
                **extra)


def test_a_batch_of_results_admits_its_links_once(make):
    f = make()
    f.admit([task("p1"), task("p2")])
    (l1, _), (l2, _) = f.lease("w", 2)[0]
    accepted = f.settle([result(l1, task("x"), task("y", host="b.example")),
                         result(l2, task("y", host="b.example"), task("z"))])
    assert sorted(accepted) == sorted([l1, l2])
    assert f.stats["admitted"] == 5 and f.stats["duplicates"] == 1
    assert sorted(urls(f.lease("w", 10)[0])) == [
        "http://a.example/x", "http://a.example/z", "http://b.example/y"]


def test_a_stale_result_in_a_batch_admits_none_of_its_links(make):
    clock = Clock()
    f = make(clock, lease_timeout=10.0)
    f.admit([task("old")])
    (stale, _), = f.lease("w1", 1)[0]
    clock.now = 11.0
    f.expire()
    clock.now = 12.0  # after the retry's backoff
    (fresh, _), = f.lease("w2", 1)[0]
    accepted = f.settle([result(stale, task("lost", host="c.example")),
                         result(fresh, task("kept"))])
    assert accepted == [fresh]
    assert f.stats["stale_results"] == 1
    assert urls(f.lease("w2", 10)[0]) == ["http://a.example/kept"]
    assert f.snapshot()["hosts"]["known"] == 1  # c.example never registered


def test_autothrottle_is_applied_in_the_settle_step(make):
    clock = Clock()
    f = make(clock, per_host=4,
             throttle=Throttle(auto=True, start_delay=1.0, target_concurrency=1.0))
    f.admit([task(str(i)) for i in range(3)])
    (lease_id, _), = f.lease("w", 5)[0]
    clock.now += 1.0
    f.settle([result(lease_id, latency=3.0)])  # delay -> (1 + 3) / 2 = 2
    clock.now += 1.99
    assert f.lease("w", 5)[0] == []
    clock.now += 0.02
    assert len(f.lease("w", 5)[0]) == 1


def test_scripts_are_loaded_again_when_redis_lost_them(make):
    f = make()
    f.admit([task("x")])
    f.client.script_flush()  # as after a restart: scripts are not persisted
    assert f.admit([task("y")]) == 1
    assert sorted(urls(f.lease("w", 10)[0])) == ["http://a.example/x", "http://a.example/y"]


def test_links_of_another_shards_host_are_admitted_in_its_shard(make):
    f = make(shards=2)
    hosts = [f"h{i}.example" for i in range(20)]
    by_shard = {f.shard_of(h): h for h in hosts}
    assert len(by_shard) == 2
    f.admit([task("p", host=by_shard[0])])
    (lease_id, _), = f.lease("w", 1)[0]
    f.settle([result(lease_id, task("a", host=by_shard[0]), task("b", host=by_shard[1]))])
    assert sorted(urls(f.lease("w", 10)[0])) == sorted(
        [f"http://{by_shard[0]}/a", f"http://{by_shard[1]}/b"])
    assert f.finished() is False and f.queued == 0


def test_a_lease_twice_in_one_batch_is_settled_once(make):
    f = make()
    f.admit([task("p")])
    (lease_id, _), = f.lease("w", 1)[0]
    accepted = f.settle([result(lease_id, task("x"), items=[{"n": 1}]),
                         result(lease_id, task("y"), items=[{"n": 2}])])
    assert accepted == [lease_id]
    assert f.stats["done"] == 1 and f.stats["stale_results"] == 1
    assert urls(f.lease("w", 10)[0]) == ["http://a.example/x"]
    assert f.client.xlen(f.prefixes[0] + "items") == 1


def test_exchange_settles_then_leases_in_one_trip(make):
    f = make(per_host=1)
    f.admit([task("p1"), task("p2")])
    (first, _), = f.lease("w", 5)[0]
    accepted, leased, _, state = f.exchange("w", [result(first, task("p3"))], 5)
    assert accepted == [first] and state == "running"
    assert urls(leased) == ["http://a.example/p2"]  # the settled page's slot, free again
    accepted, leased, _, _ = f.exchange("w", [result(first)], 5)
    assert accepted == [] and leased == []  # a stale result; the host is at its cap


# -- downloads (media tasks): their outcome is kept and told in the step that settles them --
def media(path, **extra):
    return task(path, kind="media", media={"pipeline": "p", "url": path}, **extra)


def told(f):
    """The downloads the items stream told of so far: {fp: outcome text}."""
    out = {}
    for _, fields in f.client.xrange(f.prefixes[0] + "items"):
        for line in fields.get(b"media", b"").split(b"\n") if b"media" in fields else ():
            fp, _, value = line.partition(b"\t")
            out[bytes.fromhex(fp.decode())] = value
    return out


def test_a_download_settled_by_a_worker_keeps_its_outcome(make):
    f = make()
    ok, gone = media("ok.png"), media("gone.png")
    assert f.media_states([ok, gone]) == [None, None]
    f.admit([ok, gone, task("page")])
    assert f.media_states([ok, gone]) == ["pending", "pending"]
    leased = dict((t["url"], lease_id) for lease_id, t in f.lease("w", 3)[0])
    f.settle([result(leased[ok["url"]], media={"status": "downloaded", "checksum": "abc"}),
              dict(lease=leased[gone["url"]], outcome="failed", reason="http_404"),
              result(leased["http://a.example/page"])])
    assert f.media_states([ok, gone]) == [{"checksum": "abc", "status": "downloaded"},
                                          {"reason": "http_404"}]
    assert told(f) == {ok["fp"]: b"done\tdownloaded\tabc", gone["fp"]: b"failed\thttp_404"}


def test_a_download_whose_last_lease_expired_is_failed_and_told(make):
    clock = Clock()
    f = make(clock, lease_timeout=10.0, retry_times=0)
    slow = media("slow.png")
    f.admit([slow])
    f.lease("w", 1)
    clock.now = 11.0
    assert f.expire() == 1
    assert f.media_states([slow]) == [{"reason": "lease_expired"}]
    assert told(f) == {slow["fp"]: b"failed\tlease_expired"}


def test_a_retried_download_keeps_its_mark_until_its_retries_are_used_up(make):
    clock = Clock()
    f = make(clock, retry_times=1)
    flaky = media("flaky.png")
    f.admit([flaky])
    (first, _), = f.lease("w", 1)[0]
    f.settle([dict(lease=first, outcome="retry", reason="http_503")])
    assert f.media_states([flaky]) == ["pending"] and told(f) == {}
    clock.now = 60.0  # after the backoff
    (second, again), = f.lease("w", 1)[0]
    assert again["attempt"] == 1 and again["media"] == flaky["media"]
    f.settle([dict(lease=second, outcome="retry", reason="http_503")])
    assert f.media_states([flaky]) == [{"reason": "http_503"}]


def test_a_download_refused_by_host_page_limit_is_failed(make):
    f = make(host_page_limit=1)
    f.admit([task("page")])
    capped = media("late.png")
    f.admit([capped])
    assert f.media_states([capped]) == [{"reason": "host_page_limit"}]
