"""The Frontier interface: the steps the scheduler takes, whatever holds the state.

Two backends implement it: `embedded.Frontier` (in the master's memory, under the
scheduler's lock) and `redis.RedisFrontier` (in Redis, each step one atomic script per
shard, batched). The frontier's tests run against both (tests/test_frontier.py).
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol, runtime_checkable

from .robots import RobotsRules


@runtime_checkable
class FrontierBackend(Protocol):
    """What the scheduler, the master and the status page use of a frontier."""

    def admit(self, tasks: Iterable[dict[str, Any]]) -> int:
        """Queue the tasks whose fingerprint ("fp") is new; how many were new."""

    def lease(self, worker: str, n: int) -> tuple[list[tuple[str, dict]], float]:
        """Up to n (lease id, task) pairs politeness allows now, and seconds to wait before
        asking again when none could be given."""

    def parse_robots(self, status: int, body: str) -> RobotsRules:
        """The rules of a robots.txt response (outside any lock: big files are slow)."""

    def complete(self, lease_id: str, outcome: str, reason: str | None = None,
                 robots: RobotsRules | None = None) -> dict | None:
        """Settle a lease (DONE, FAILED or "retry"); the task, or None when it is stale."""

    def feedback(self, name: str, latency: float | None, ok: bool,
                 retry_after: float | None = None) -> None:
        """A response's latency (AutoThrottle) and Retry-After for its host."""

    def renew(self, worker: str, lease_ids: Iterable[str]) -> None:
        """Heartbeat: extend the leases a live worker holds."""

    def expire(self) -> int:
        """Requeue the tasks whose lease ran out (an attempt); how many."""

    def release_worker(self, worker: str) -> int:
        """Requeue every task leased to a worker that left (no attempt); how many."""

    def snapshot(self, top: int = 20) -> dict[str, Any]:
        """Plain-dict state for crawler.status: stats, queued, in_flight, hosts,
        failure_examples, leases_by_worker."""

    def finished(self) -> bool:
        """Nothing queued, nothing waiting for a retry, nothing leased."""

    def media_states(self, tasks: list[dict[str, Any]]) -> list[Any]:
        """Where each download (a media task) stands: None (new), "pending" (queued,
        leased or waiting for a retry), "again" (settled before a restart, outcome not
        kept), or its outcome when the backend keeps it ({"checksum", "status"} or
        {"reason"})."""

    def ask_close(self, reason: str) -> None:
        """A spider raised CloseSpider: keep its reason for the master (the first wins)."""

    def close_asked(self) -> str | None:
        """The reason a spider asked the crawl to close with, or None."""

    def lease_of(self, lease_id: str) -> tuple[str, dict[str, Any]] | None:
        """(worker, task) of a lease still out, or None (unknown, settled or expired)."""

    def close(self) -> None:
        """Release what the frontier holds (files, connections); the crawl is over."""

    @property
    def leased(self) -> int:
        """Tasks out with workers now."""
