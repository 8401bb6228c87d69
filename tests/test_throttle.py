"""AutoThrottle, Retry-After, per-host page cap and trap rules: pure units, fake clock."""
import email.utils
import time

import pytest

from crawler.frontier import Frontier
from crawler.spider.handler import retry_after
from crawler.http.request import Request
from crawler.frontier.throttle import Throttle
from crawler.urls import repeats_segment


def make_task(url):
    return Request(url).to_task(0)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_autothrottle_moves_delay_toward_latency_over_target():
    t = Throttle(delay=0.5, auto=True, target_concurrency=2.0, start_delay=4.0, max_delay=10.0)
    assert t.initial() == 4.0
    assert t.adjust(4.0, 0.5, latency=2.0, ok=True) == pytest.approx((4.0 + 1.0) / 2)
    assert t.adjust(1.0, 0.5, latency=0.01, ok=True) == pytest.approx(0.5025)
    assert t.adjust(0.5, 0.5, latency=0.01, ok=True) == 0.5  # the floor holds
    assert t.adjust(9.0, 0.5, latency=100.0, ok=True) == 10.0  # capped


def test_autothrottle_errors_never_speed_up():
    t = Throttle(auto=True, target_concurrency=1.0)
    assert t.adjust(3.0, 0.0, latency=0.1, ok=False) == 3.0
    assert t.adjust(3.0, 0.0, latency=9.0, ok=False) == pytest.approx(6.0)


def test_autothrottle_off_keeps_delay():
    assert Throttle(delay=1.0).adjust(1.0, 1.0, latency=30.0, ok=True) == 1.0


def gaps(f, clock, host, pages):
    """Start times apart of `pages` requests to host, each settled at once."""
    f.admit([make_task(f"http://{host}/{i}") for i in range(pages)])
    starts = []
    for _ in range(10_000):
        for lease_id, _ in f.lease("w", 10)[0]:
            starts.append(clock.now)
            f.complete(lease_id, "done")
        if len(starts) == pages:
            return [round(b - a, 6) for a, b in zip(starts, starts[1:])]
        clock.now += 0.01
    raise AssertionError(f"only {len(starts)} leased")


@pytest.mark.parametrize("rng, randomize, gap", [(0.0, True, 1.0), (0.99, True, 2.98),
                                                 (0.0, False, 2.0)])
def test_randomized_spacing(rng, randomize, gap):
    clock = Clock()
    f = Frontier(clock=clock, rng=lambda: rng, throttle=Throttle(2.0, randomize))
    assert all(abs(g - gap) < 0.011 for g in gaps(f, clock, "a.test", 4))


def test_download_slots_set_concurrency_and_delay_per_host():
    clock = Clock()
    slots = {"slow.test": {"concurrency": 1, "delay": 2.0, "randomize_delay": False},
             "wide.test": {"concurrency": 3}}
    f = Frontier(per_host=8, clock=clock, rng=lambda: 0.0, slots=slots,
                 throttle=Throttle(0.0, randomize=True))
    assert all(abs(g - 2.0) < 0.011 for g in gaps(f, clock, "slow.test", 3))
    f.admit([make_task(f"http://{h}/{i}") for h in ("wide.test", "other.test") for i in range(9)])
    leased = [t["host"] for _, t in f.lease("w", 100)[0]]
    assert leased.count("wide.test") == 3 and leased.count("other.test") == 8


@pytest.mark.parametrize("header, expected", [
    ("120", 120.0), (" 5 ", 5.0), ("", None), (None, None), ("soon", None),
])
def test_retry_after_seconds(header, expected):
    assert retry_after(header) == expected


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(when) <= 31


def test_retry_after_pauses_host_capped():
    clock = Clock()
    f = Frontier(per_host=4, clock=clock, throttle=Throttle(retry_after_max=10.0))
    f.admit([make_task(f"http://a.test/{i}") for i in range(3)])
    (lease_id, task), = f.lease("w", 1)[0]
    f.complete(lease_id, "retry", "http_503")
    f.feedback("a.test", latency=0.1, ok=False, retry_after=3600)
    assert f.lease("w", 5)[0] == []
    clock.now += 9.9
    assert f.lease("w", 5)[0] == []
    clock.now += 0.2
    assert len(f.lease("w", 5)[0]) == 3  # the two waiting and the retried one


def test_autothrottle_feedback_changes_host_delay():
    clock = Clock()
    f = Frontier(per_host=4, clock=clock,
                 throttle=Throttle(auto=True, start_delay=1.0, target_concurrency=1.0))
    f.admit([make_task(f"http://a.test/{i}") for i in range(3)])
    (lease_id, _), = f.lease("w", 5)[0]
    clock.now += 1.0
    f.complete(lease_id, "done")
    f.feedback("a.test", latency=3.0, ok=True)  # delay -> (1 + 3) / 2 = 2
    clock.now += 1.99
    assert f.lease("w", 5)[0] == []
    clock.now += 0.02
    assert len(f.lease("w", 5)[0]) == 1


def test_host_page_limit_drops_and_counts():
    f = Frontier(host_page_limit=2)
    new = f.admit([make_task(f"http://a.test/{i}") for i in range(5)] +
                  [make_task("http://b.test/")])
    assert new == 3
    assert f.stats["dropped/host_page_limit"] == 3


@pytest.mark.parametrize("url, trapped", [
    ("http://a.test/a/b/a/b/a/b/a/b", True),
    ("http://a.test/x/x/x/x", True),
    ("http://a.test/a/b/a/b/a/b", False),
    ("http://a.test/2024/01/02/", False),
    ("http://a.test/", False),
])
def test_repeated_segments(url, trapped):
    assert repeats_segment(url, 3) is trapped
