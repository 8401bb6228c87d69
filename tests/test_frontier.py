"""The Frontier interface, run against both backends: the embedded frontier and the Redis
one (a real redis-server on a free loopback port; the Redis cases skip loudly without one),
driven by a fake clock (never sleeps). The shared cases use only the interface
(crawler.frontier.base.FrontierBackend); the embedded frontier's seen states are checked at
the end, Redis-only behaviour is in tests/test_redis_frontier.py."""
import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.frontier import DONE, FAILED, LEASED, QUEUED, Frontier  # noqa: E402
from crawler.frontier.base import FrontierBackend  # noqa: E402
from crawler.frontier.throttle import Throttle  # noqa: E402
from redis_server import start_or_skip  # noqa: E402

_names = itertools.count()


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def task(path, host="a.example", priority=0, **extra):
    url = f"http://{host}/{path}"
    return dict({"url": url, "fp": url.encode(), "host": host, "depth": 0, "priority": priority},
                **extra)


def urls(leased):
    return [t["url"] for _, t in leased]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = start_or_skip(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


def build(backend, request, clock=None, **kwargs):
    """A frontier of `backend` with test defaults: "embedded", "compact" (embedded, with
    every fingerprint in the compact table and every queued URL but one spilled to disk: the
    same behaviour) or "redis"."""
    kwargs.setdefault("rng", lambda: 0.5)  # backoff factor 1.0, randomized delay factor 1.0
    kwargs.setdefault("clock", clock or Clock())
    if backend == "compact":
        spill = request.getfixturevalue("tmp_path")
        kwargs = dict(seen_dict_max=0, memory_queue=1, spill_dir=str(spill), **kwargs)
    if backend in ("embedded", "compact"):
        frontier = Frontier(**kwargs)
    else:
        from crawler.frontier.redis import RedisFrontier
        server = request.getfixturevalue("redis_server")
        frontier = RedisFrontier(server.client(), f"t{next(_names)}", **kwargs)
    assert isinstance(frontier, FrontierBackend)
    return frontier


@pytest.fixture(params=["embedded", "compact", "redis"])
def make(request):
    """make(clock=None, **Frontier options) -> a frontier of the backend under test."""
    return lambda clock=None, **kwargs: build(request.param, request, clock, **kwargs)


# -- admission -------------------------------------------------------------------

def test_admit_dedups_by_fp(make):
    f = make()
    assert f.admit([task("x"), task("y"), task("x")]) == 2
    assert f.admit([task("y")]) == 0
    assert f.stats["duplicates"] == 2
    assert f.stats["admitted"] == 2
    assert f.queued == 2


def test_admit_dedups_even_with_a_different_url(make):
    f = make()
    f.admit([dict(task("x"), fp=b"same")])
    assert f.admit([dict(task("other"), fp=b"same")]) == 0


def test_admit_after_done_is_duplicate(make):
    f = make()
    f.admit([task("x")])
    (lease_id, _), = f.lease("w", 1)[0]
    f.complete(lease_id, DONE)
    assert f.admit([task("x")]) == 0


def test_dont_filter_is_admitted_again(make):
    f = make()
    f.admit([task("x")])
    assert f.admit([task("x", dont_filter=True)]) == 1
    assert f.queued == 2


# -- leasing ---------------------------------------------------------------------

def test_lease_marks_leased_and_counts(make):
    f = make()
    f.admit([task("x")])
    leased, _ = f.lease("w1", 10)
    assert urls(leased) == ["http://a.example/x"]
    assert f.leased == 1 and f.queued == 0


def test_lease_respects_batch_size(make):
    f = make()
    f.admit([task(f"p{i}", host=f"h{i}.example") for i in range(5)])
    assert len(f.lease("w", 3)[0]) == 3
    assert len(f.lease("w", 3)[0]) == 2


def test_lease_respects_per_host_cap(make):
    f = make(per_host=2)
    f.admit([task(f"p{i}") for i in range(5)])
    first, _ = f.lease("w", 10)
    assert len(first) == 2
    assert f.lease("w", 10)[0] == []
    f.complete(first[0][0], DONE)
    again, _ = f.lease("w", 10)
    assert len(again) == 1
    assert f.leased == 2


def test_per_host_cap_spans_workers(make):
    f = make(per_host=1)
    f.admit([task("p1"), task("p2")])
    assert len(f.lease("w1", 5)[0]) == 1
    assert f.lease("w2", 5)[0] == []


def test_priorities_within_host_higher_first_fifo_among_equals(make):
    f = make()
    f.admit([task("x1", priority=0), task("x2", priority=5), task("x3", priority=0),
             task("x4", priority=5), task("x5", priority=-1)])
    leased, _ = f.lease("w", 10)
    assert [u.rsplit("/", 1)[1] for u in urls(leased)] == ["x2", "x4", "x1", "x3", "x5"]


# -- politeness -------------------------------------------------------------------

def test_download_delay_spaces_leases_to_one_host(make):
    clock = Clock()
    f = make(clock, delay=2.0, randomize_delay=False)
    f.admit([task(f"p{i}") for i in range(5)])
    times = []
    while clock.now <= 10.0:
        leased, _ = f.lease("w", 10)
        for lease_id, _ in leased:
            times.append(clock.now)
            f.complete(lease_id, DONE)
        clock.now = round(clock.now + 0.25, 2)
    assert times == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_download_delay_holds_with_retries_and_lost_workers(make):
    clock = Clock()
    f = make(clock, delay=1.0, per_host=3, lease_timeout=2.0)
    f.admit([task(f"p{i}") for i in range(6)])
    starts, pending = [], []
    for step in range(400):
        f.expire()
        for lease_id, t in f.lease(f"w{step % 2}", 10)[0]:
            starts.append(clock.now)
            pending.append((clock.now + 0.3, lease_id, t))
        for entry in [p for p in pending if p[0] <= clock.now]:
            pending.remove(entry)
            _, lease_id, t = entry
            if t["url"].endswith("p2"):
                continue  # never answered: the lease expires
            retry = t["url"].endswith("p1") and "attempt" not in t
            f.complete(lease_id, "retry" if retry else DONE, "http_503" if retry else None)
        if step == 15:
            f.release_worker("w1")
        clock.now = round(clock.now + 0.1, 2)
        if f.finished():
            break
    assert f.finished()
    assert f.failures == [("http://a.example/p2", "lease_expired")]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) >= 9
    assert min(gaps) >= 1.0 - 1e-9


def test_download_delay_one_lease_even_with_room(make):
    clock = Clock()
    f = make(clock, delay=1.0, per_host=8)
    f.admit([task("p1"), task("p2")])
    leased, hint = f.lease("w", 10)
    assert len(leased) == 1
    assert hint == pytest.approx(1.0)
    clock.now = 0.99
    assert f.lease("w", 10)[0] == []
    clock.now = 1.0
    assert len(f.lease("w", 10)[0]) == 1


def test_randomized_delay_uses_rng(make):
    clock = Clock()
    f = make(clock, delay=2.0, randomize_delay=True, rng=lambda: 0.25)  # factor 0.75
    f.admit([task("p1"), task("p2")])
    assert len(f.lease("w", 10)[0]) == 1
    clock.now = 1.49
    assert f.lease("w", 10)[0] == []
    clock.now = 1.5
    assert len(f.lease("w", 10)[0]) == 1


def test_other_hosts_leased_while_one_waits(make):
    clock = Clock()
    f = make(clock, delay=5.0)
    f.admit([task("a1", "a.example"), task("a2", "a.example"), task("b1", "b.example")])
    leased, _ = f.lease("w", 10)
    assert sorted(urls(leased)) == ["http://a.example/a1", "http://b.example/b1"]
    clock.now = 1.0
    f.admit([task("c1", "c.example")])
    assert urls(f.lease("w", 10)[0]) == ["http://c.example/c1"]
    assert f.lease("w", 10)[0] == []
    clock.now = 5.0
    assert urls(f.lease("w", 10)[0]) == ["http://a.example/a2"]


def test_delay_applies_to_tasks_admitted_later(make):
    clock = Clock()
    f = make(clock, delay=3.0)
    f.admit([task("p1")])
    f.lease("w", 1)
    clock.now = 1.0
    f.admit([task("p2")])
    leased, hint = f.lease("w", 1)
    assert leased == []
    assert hint == pytest.approx(2.0)


# -- results ------------------------------------------------------------------------

def test_complete_done_and_failed(make):
    f = make()
    f.admit([task("ok"), task("bad")])
    leased = dict((t["url"], lid) for lid, t in f.lease("w", 10)[0])
    assert f.complete(leased["http://a.example/ok"], DONE)["url"] == "http://a.example/ok"
    assert f.complete(leased["http://a.example/bad"], FAILED, "http_404")["url"] == \
        "http://a.example/bad"
    assert f.failures == [("http://a.example/bad", "http_404")]
    assert f.stats["done"] == 1 and f.stats["failed"] == 1 and f.stats["failed/http_404"] == 1
    assert f.finished()


def test_complete_unknown_or_twice_is_stale(make):
    f = make()
    f.admit([task("x")])
    (lease_id, _), = f.lease("w", 1)[0]
    assert f.complete("no-such-lease", DONE) is None
    assert f.complete(lease_id, DONE) is not None
    assert f.complete(lease_id, FAILED, "late") is None
    assert f.stats["stale_results"] == 2
    assert f.failures == []


def test_retry_waits_for_backoff_then_fails_after_retry_times(make):
    clock = Clock()
    f = make(clock, retry_times=2)
    f.admit([task("x")])

    (lid, t), = f.lease("w", 1)[0]
    assert "attempt" not in t
    f.complete(lid, "retry", "http_503")            # backoff 0.5 s (rng 0.5 -> factor 1)
    assert not f.finished()
    clock.now = 0.49
    leased, hint = f.lease("w", 1)
    assert leased == [] and hint == pytest.approx(0.01)

    clock.now = 0.5
    (lid, t), = f.lease("w", 1)[0]
    assert t["attempt"] == 1
    f.complete(lid, "retry", "http_503")            # backoff 1.0 s
    clock.now = 1.49
    assert f.lease("w", 1)[0] == []

    clock.now = 1.5
    (lid, t), = f.lease("w", 1)[0]
    assert t["attempt"] == 2
    f.complete(lid, "retry", "http_503")            # third failure: out of retries
    assert f.failures == [("http://a.example/x", "http_503")]
    assert f.stats["retries"] == 2
    assert f.stats["failed/http_503"] == 1
    assert f.finished()


def test_retry_times_zero_fails_at_once(make):
    f = make(retry_times=0)
    f.admit([task("x")])
    (lid, _), = f.lease("w", 1)[0]
    f.complete(lid, "retry", "timeout")
    assert f.failures == [("http://a.example/x", "timeout")]
    assert f.finished()


def test_retry_backoff_scaled_by_rng(make):
    clock = Clock()
    f = make(clock, rng=lambda: 0.0)  # factor 0.5: first backoff 0.25 s
    f.admit([task("x")])
    (lid, _), = f.lease("w", 1)[0]
    f.complete(lid, "retry", "connection")
    clock.now = 0.24
    assert f.lease("w", 1)[0] == []
    clock.now = 0.25
    assert len(f.lease("w", 1)[0]) == 1


# -- expiry and lost workers ------------------------------------------------------------

def test_expire_requeues_and_ignores_late_result(make):
    clock = Clock()
    f = make(clock, lease_timeout=10.0)
    f.admit([task("x")])
    (old, _), = f.lease("w1", 1)[0]
    clock.now = 9.9
    assert f.expire() == 0
    clock.now = 10.1
    assert f.expire() == 1
    assert f.stats["leases_expired"] == 1
    assert f.leased == 0 and f.queued == 1

    clock.now = 20.0
    (new, t), = f.lease("w2", 1)[0]
    assert t["attempt"] == 1
    assert f.complete(old, DONE) is None
    assert f.stats["stale_results"] == 1
    assert f.complete(new, DONE) is not None
    assert f.expire() == 0


def test_expired_lease_frees_host_slot(make):
    clock = Clock()
    f = make(clock, per_host=1, lease_timeout=5.0)
    f.admit([task("p1"), task("p2")])
    f.lease("w", 5)
    assert f.lease("w", 5)[0] == []
    clock.now = 6.0
    f.expire()
    assert urls(f.lease("w", 5)[0]) == ["http://a.example/p2"]


def test_release_worker_requeues_without_attempt(make):
    f = make()
    f.admit([task("p1"), task("p2", host="b.example"), task("p3", host="c.example")])
    leased = f.lease("gone", 2)[0]
    f.lease("alive", 1)
    assert f.release_worker("gone") == 2
    assert f.leased == 1
    assert f.stats["retries"] == 0
    again = f.lease("w2", 10)[0]
    assert sorted(urls(again)) == sorted(urls(leased))
    assert all("attempt" not in t for _, t in again)
    assert f.release_worker("nobody") == 0


def test_release_worker_late_result_is_stale(make):
    f = make()
    f.admit([task("x")])
    (lid, _), = f.lease("gone", 1)[0]
    f.release_worker("gone")
    assert f.complete(lid, DONE) is None


# -- finishing and hints ---------------------------------------------------------------

def test_finished_only_when_nothing_queued_leased_or_delayed(make):
    clock = Clock()
    f = make(clock)
    assert f.finished()
    f.admit([task("x")])
    assert not f.finished()
    (lid, _), = f.lease("w", 1)[0]
    assert not f.finished()
    f.complete(lid, "retry", "timeout")
    assert not f.finished()          # waiting for its backoff
    clock.now = 100.0
    (lid, _), = f.lease("w", 1)[0]
    f.complete(lid, DONE)
    assert f.finished()


def test_wait_hint_nothing_at_all(make):
    assert make().lease("w", 1) == ([], 0.5)


def test_wait_hint_host_at_cap_with_lease_out(make):
    f = make(per_host=1)
    f.admit([task("p1"), task("p2")])
    f.lease("w", 1)
    assert f.lease("w", 1) == ([], 0.05)


def test_wait_hint_until_delay_is_over(make):
    clock = Clock()
    f = make(clock, delay=2.0)
    f.admit([task("p1"), task("p2")])
    f.lease("w", 1)
    clock.now = 0.5
    leased, hint = f.lease("w", 1)
    assert leased == [] and hint == pytest.approx(1.5)


# -- robots.txt (the rules parsed where the robots.txt result is settled) ---------------------

def settle_robots(f, body, status=200):
    (lid, t), = f.lease("w", 10)[0]
    assert t["robots"] and t["url"] == "http://a.example/robots.txt"
    return f.complete(lid, DONE, None, f.parse_robots(status, body))


def test_robots_first_then_disallowed_fail_without_lease(make):
    f = make(robots_agent="crawler")
    f.admit([task("ok"), task("private/x")])
    assert f.lease("w", 10)[0][0][1]["robots"]          # only robots.txt while it is pending
    f.release_worker("w")
    settle_robots(f, "User-agent: *\nDisallow: /private/\n")
    assert urls(f.lease("w", 10)[0]) == ["http://a.example/ok"]
    assert f.failures == [("http://a.example/private/x", "robots")]
    assert f.stats["robots_fetched"] == 1


def test_robots_crawl_delay_spaces_the_host(make):
    clock = Clock()
    f = make(clock, robots_agent="crawler")
    f.admit([task("p1"), task("p2")])
    settle_robots(f, "User-agent: *\nCrawl-delay: 2\n")  # spaced from that response on
    starts = []
    while clock.now <= 5.0:
        for lid, _ in f.lease("w", 10)[0]:
            starts.append(clock.now)
            f.complete(lid, DONE)
        clock.now = round(clock.now + 0.1, 2)
    assert starts == [2.0, 4.0]


def test_robots_unavailable_fails_the_origin(make):
    f = make(robots_agent="crawler", retry_times=0)
    f.admit([task("p1")])
    (lid, _), = f.lease("w", 10)[0]
    f.complete(lid, "retry", "http_503")
    assert f.lease("w", 10)[0] == []
    assert f.failures == [("http://a.example/p1", "robots_unavailable:http_503")]
    assert f.finished()


def test_snapshot_shape(make):
    f = make(per_host=1)
    f.admit([task("x"), task("y"), task("z", host="b.example")])
    leased = dict((t["url"], lid) for lid, t in f.lease("w", 10)[0])
    assert sorted(leased) == ["http://a.example/x", "http://b.example/z"]
    f.complete(leased["http://a.example/x"], FAILED, "http_404")
    snap = f.snapshot(top=5)
    assert snap["queued"] == 1 and snap["in_flight"] == 1
    assert snap["hosts"]["known"] == 2
    assert [r["host"] for r in snap["hosts"]["by_queue"]] == ["a.example"]
    assert snap["failure_examples"] == {"http_404": ["http://a.example/x"]}
    assert [r["host"] for r in snap["hosts"]["by_failures"]] == ["a.example"]
    assert snap["stats"]["failed/http_404"] == 1
    assert sum(snap["leases_by_worker"].values()) == 1


# -- AutoThrottle and Retry-After (feedback) ------------------------------------------------

def test_retry_after_pauses_host_capped(make):
    clock = Clock()
    f = make(clock, per_host=4, throttle=Throttle(retry_after_max=10.0))
    f.admit([task(str(i)) for i in range(3)])
    (lease_id, _), = f.lease("w", 1)[0]
    f.complete(lease_id, "retry", "http_503")
    f.feedback("a.example", latency=0.1, ok=False, retry_after=3600)
    assert f.lease("w", 5)[0] == []
    clock.now += 9.9
    assert f.lease("w", 5)[0] == []
    clock.now += 0.2
    assert len(f.lease("w", 5)[0]) == 3  # the two waiting and the retried one


def test_autothrottle_feedback_changes_host_delay(make):
    clock = Clock()
    f = make(clock, per_host=4,
             throttle=Throttle(auto=True, start_delay=1.0, target_concurrency=1.0))
    f.admit([task(str(i)) for i in range(3)])
    (lease_id, _), = f.lease("w", 5)[0]
    clock.now += 1.0
    f.complete(lease_id, DONE)
    f.feedback("a.example", latency=3.0, ok=True)  # delay -> (1 + 3) / 2 = 2
    clock.now += 1.99
    assert f.lease("w", 5)[0] == []
    clock.now += 0.02
    assert len(f.lease("w", 5)[0]) == 1


def test_autothrottle_error_responses_never_speed_a_host_up(make):
    clock = Clock()
    f = make(clock, per_host=4,
             throttle=Throttle(auto=True, start_delay=4.0, target_concurrency=1.0))
    f.admit([task(str(i)) for i in range(3)])
    (lease_id, _), = f.lease("w", 5)[0]
    f.complete(lease_id, DONE)
    f.feedback("a.example", latency=0.0, ok=False)  # would be (4 + 0) / 2: kept at 4
    clock.now += 3.99
    assert f.lease("w", 5)[0] == []
    clock.now += 0.02
    assert len(f.lease("w", 5)[0]) == 1


# -- the embedded frontier's seen states (what its seen dict tells a worker) ---------------

@pytest.fixture(params=["embedded", "compact"])
def embedded(request):
    """embedded(clock=None, **Frontier options) -> an embedded frontier (both seen stores)."""
    return lambda clock=None, **kwargs: build(request.param, request, clock, **kwargs)


def test_seen_states_through_admit_lease_and_complete(embedded):
    f = embedded()
    f.admit([task("x"), task("y"), task("x")])
    assert len(f.seen) == 2
    assert f.seen[b"http://a.example/x"] == f.seen[b"http://a.example/y"] == QUEUED
    leased = {t["url"]: lid for lid, t in f.lease("w", 10)[0]}
    assert f.seen[b"http://a.example/x"] == LEASED
    f.complete(leased["http://a.example/x"], DONE)
    f.complete(leased["http://a.example/y"], FAILED, "http_404")
    assert len(f.seen) == 2
    assert (f.seen[b"http://a.example/x"], f.seen[b"http://a.example/y"]) == (DONE, FAILED)
    assert f.complete(leased["http://a.example/x"], DONE) is None  # stale: state kept
    assert f.seen[b"http://a.example/x"] == DONE


def test_seen_state_through_retries_to_failed(embedded):
    clock = Clock()
    f = embedded(clock=clock, retry_times=1)
    fp = b"http://a.example/x"
    f.admit([task("x")])
    (lid, _), = f.lease("w", 1)[0]
    f.complete(lid, "retry", "http_503")
    assert f.seen[fp] == QUEUED
    clock.now = 100.0
    (lid, _), = f.lease("w", 1)[0]
    f.complete(lid, "retry", "http_503")
    assert f.seen[fp] == FAILED


def test_seen_state_after_expire_and_release(embedded):
    clock = Clock()
    f = embedded(clock=clock, lease_timeout=10.0)
    f.admit([task("x")])
    f.lease("w1", 1)
    clock.now = 11.0
    assert f.expire() == 1
    assert f.seen[b"http://a.example/x"] == QUEUED
    clock.now = 20.0
    (lid, _), = f.lease("w2", 1)[0]
    assert f.seen[b"http://a.example/x"] == LEASED
    f.release_worker("w2")
    assert f.seen[b"http://a.example/x"] == QUEUED
    (lid, _), = f.lease("w3", 1)[0]
    f.complete(lid, DONE)
    assert f.seen[b"http://a.example/x"] == DONE


def test_one_admission_of_ten_thousand_hosts(make):
    f = make()
    tasks = [task("p", host=f"h{i}.example") for i in range(10_000)]
    assert f.admit(tasks) == 10_000
    assert len(f.lease("w", 20_000)[0]) == 10_000
