"""robots.txt in the frontier (fake clock): Crawl-delay is a floor however the delay is
randomized, and a robots.txt that cannot be had names its cause in the pages' failures."""
import pytest
from test_frontier import Clock, task

from crawler.frontier import FAILED, Frontier
from crawler.frontier.throttle import Throttle


def frontier(clock, delay=0.0, rng=0.0, **kwargs):
    return Frontier(per_host=8, clock=clock, rng=lambda: rng, robots_agent="crawler/1.0",
                    throttle=Throttle(delay, randomize=True), **kwargs)


def settle_robots(f, outcome="done", robots=None, reason=None):
    (lease_id, t), = f.lease("w", 10)[0]
    assert t["robots"] and t["url"] == "http://a.example/robots.txt"
    f.complete(lease_id, outcome, reason, f.parse_robots(*robots) if robots else None)


def start_gaps(f, clock, pages):
    """Lease the host's pages one by one, settling each at once; the times they started."""
    starts = []
    for _ in range(2000):
        leased, _ = f.lease("w", 10)
        for lease_id, _ in leased:
            starts.append(clock.now)
            f.complete(lease_id, "done")
        if len(starts) == pages:
            return [b - a for a, b in zip(starts, starts[1:])]
        clock.now += 0.05
    raise AssertionError(f"only {len(starts)} of {pages} pages leased")


@pytest.mark.parametrize("delay, rng, least", [
    (0.0, 0.0, 2.0),   # no DOWNLOAD_DELAY: Crawl-delay alone, not randomized down to 1 s
    (1.0, 0.0, 2.0),   # a smaller DOWNLOAD_DELAY randomized (0.5 s): Crawl-delay wins
    (3.0, 0.0, 2.0),   # DOWNLOAD_DELAY 3 randomized down to 1.5 s: never below Crawl-delay
    (3.0, 1.0, 4.5),   # ... and randomized up: 4.5 s
])
def test_crawl_delay_is_a_floor_of_the_randomized_delay(delay, rng, least):
    clock = Clock()
    f = frontier(clock, delay, rng)
    f.admit([task(str(i)) for i in range(4)])
    settle_robots(f, robots=(200, "User-agent: *\nCrawl-delay: 2\n"))
    clock.now += 10
    gaps = start_gaps(f, clock, 4)
    assert min(gaps) >= least - 1e-9, gaps
    assert max(gaps) < least + 0.1, gaps  # and no slower than it needs to be


def test_unavailable_robots_names_its_cause():
    clock = Clock()
    f = frontier(clock)
    f.admit([task("x"), task("y")])
    settle_robots(f, "failed", reason="tls")
    assert f.lease("w", 10)[0] == []
    assert sorted(f.failures) == [("http://a.example/x", "robots_unavailable:tls"),
                                  ("http://a.example/y", "robots_unavailable:tls")]
    assert f.stats["failed/robots_unavailable:tls"] == 2


def test_robots_retries_exhausted_name_the_last_reason():
    clock = Clock()
    f = frontier(clock, retry_times=1)
    f.admit([task("x")])
    settle_robots(f, "retry", reason="connection")
    clock.now += 60
    settle_robots(f, "retry", reason="http_503")
    assert f.lease("w", 10)[0] == []
    assert f.failures == [("http://a.example/x", "robots_unavailable:http_503")]
    assert f.seen[b"http://a.example/x"] == FAILED


def test_disallowed_urls_fail_as_robots():
    clock = Clock()
    f = frontier(clock)
    f.admit([task("private/x"), task("public")])
    settle_robots(f, robots=(200, "User-agent: *\nDisallow: /private/\n"))
    assert [t["url"] for _, t in f.lease("w", 10)[0]] == ["http://a.example/public"]
    assert f.failures == [("http://a.example/private/x", "robots")]


@pytest.mark.parametrize("delay", ["1e308", "99999"])
def test_a_huge_crawl_delay_is_capped(delay):
    clock = Clock()
    f = frontier(clock, robots_max_delay=30.0)
    f.admit([task(str(i)) for i in range(3)])
    settle_robots(f, robots=(200, f"User-agent: *\nCrawl-delay: {delay}\n"))
    clock.now += 100
    gaps = start_gaps(f, clock, 3)
    assert all(30.0 <= gap < 30.1 for gap in gaps), gaps


def test_the_scheduler_parses_robots_outside_its_lock():
    from crawler.scheduler import Scheduler

    class Watching(Frontier):
        def parse_robots(self, status, body):
            held.append(scheduler.lock.locked())
            return super().parse_robots(status, body)

    held: list[bool] = []
    f = Watching(robots_agent="crawler/1.0")
    scheduler = Scheduler(f, {}, lambda items: None, batch_size=10)
    scheduler.admit([task("x")])
    [robots] = scheduler.lease("w", 5)["tasks"]
    scheduler.put("w", [{"lease": robots["lease"], "outcome": "done", "status": 200,
                         "robots": "User-agent: *\nDisallow: /x\n"}])
    assert held == [False]
    assert scheduler.lease("w", 5)["tasks"] == []
    assert f.failures == [("http://a.example/x", "robots")]


def test_a_huge_robots_txt_is_read_up_to_500_kib_of_whole_lines():
    from test_fetcher import StubFetcher, rules as handler_rules

    from crawler import GenericSpider
    from crawler.spider.handler import Handler
    rules = "".join(f"Disallow: /private-{i:07d}/\n" for i in range(40_000))  # ~1 MB
    body = ("User-agent: *\nDisallow: /first/\n" + rules).encode()
    url = "http://example.com/robots.txt"
    fetcher = StubFetcher({url: (200, {"Content-Type": "text/plain"}, body)})
    result = Handler(GenericSpider(), fetcher, handler_rules()).handle({"url": url, "robots": True})
    text = result["robots"]
    assert 500 * 1024 - 30 < len(text) <= 500 * 1024 and text.endswith("/\n")
    assert text.startswith("User-agent: *\nDisallow: /first/\n")


def test_rules_are_kept_per_origin_not_per_host_name():
    clock = Clock()
    f = frontier(clock)
    main = "http://a.example/"
    other = "http://a.example:8080/"
    f.admit([dict(task("x"), url=main + "x", fp=b"1"), dict(task("x"), url=other + "x", fp=b"2")])
    leased, _ = f.lease("w", 10)
    robots = {t["url"]: lease_id for lease_id, t in leased}
    assert sorted(robots) == [main + "robots.txt", other + "robots.txt"]  # both first
    f.complete(robots[main + "robots.txt"], "done", None,
               f.parse_robots(200, "User-agent: *\nDisallow: /x\n"))
    assert f.lease("w", 10)[0] == []  # the other origin's robots.txt is not settled yet
    f.complete(robots[other + "robots.txt"], "done", None, f.parse_robots(404, ""))
    assert [t["url"] for _, t in f.lease("w", 10)[0]] == [other + "x"]
    assert f.failures == [(main + "x", "robots")]
