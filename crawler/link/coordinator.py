"""What a worker talks to for work: the master's proxies, or Redis.

`route(proxies, reply)` is the one place a worker picks: when the master's hello reply
names a Redis backend, the worker's url_queue, result_queue and control become
objects with the same methods that lease from and settle into Redis directly (the master
is asked only for the crawl's configuration, in hello). Redis errors surface as
ConnectionError (an OSError), which the worker already treats as a lost master:
reconnect with backoff, results sent again (settling is idempotent by lease id).
"""
from __future__ import annotations

import logging
from typing import Any

from ..frontier import redis_keys

log = logging.getLogger(__name__)
_clients: dict[str, Any] = {}  # one client (a pool) per Redis URL, kept across reconnects


def route(proxies: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """The objects a worker calls: `proxies` as they are for an embedded master."""
    backend = reply.get("backend")
    if not backend or backend.get("kind") != "redis":
        return proxies
    from ..frontier.redis_crawl import frontier_from_settings
    client = _clients.get(backend["url"])
    if client is None:
        client = _clients[backend["url"]] = redis_keys.client_for(backend["url"])
    frontier = frontier_from_settings(client, backend["crawl"], backend["shards"],
                                      reply["settings"])
    on_redis = RedisQueues(frontier, reply["settings"]["BATCH_SIZE"])
    return dict(proxies, url_queue=on_redis, result_queue=on_redis,
                control=on_redis)


def _lost(exc: Exception) -> ConnectionError:
    return ConnectionError(f"Redis: {exc}")


class RedisQueues:
    """url_queue.lease and .exchange, result_queue.put and control.bye, on Redis."""

    def __init__(self, frontier: Any, batch_size: int) -> None:
        import redis
        self.frontier, self.batch_size = frontier, batch_size
        self._errors = (redis.RedisError, OSError)

    def lease(self, worker: str, want: int, renew: list[str] = ()) -> dict[str, Any]:
        try:
            leases, wait, state = self.frontier.lease_state(worker, min(want, self.batch_size),
                                                            renew)
        except self._errors as exc:
            raise _lost(exc) from exc
        return self._reply(leases, wait, state)

    def _reply(self, leases: list, wait: float, state: str) -> dict[str, Any]:
        if state.startswith("over"):
            return {"tasks": [], "wait": 0.0, "done": True,
                    "closed_by": state.partition(":")[2] or "finished"}
        wait = 0.2 if state == "closing" else wait
        return {"tasks": [dict(task, lease=lease_id) for lease_id, task in leases],
                "wait": wait, "done": False}

    def put(self, worker: str, results: list[dict[str, Any]]) -> list[str]:
        try:
            accepted = self.frontier.settle(results)
            self._forward_close(results)
        except self._errors as exc:
            raise _lost(exc) from exc
        return accepted

    def _forward_close(self, results: list[dict[str, Any]]) -> None:
        """On the embedded master the scheduler reads a result's CloseSpider; here the
        master reads it from Redis."""
        for result in results:
            if "close" in result:
                self.frontier.ask_close(result["close"])
                return

    def exchange(self, worker: str, results: list[dict[str, Any]], want: int,
                 renew: list[str] = ()) -> dict[str, Any]:
        """put, then lease, in one round trip: the lease reply plus "accepted" (the lease
        ids taken)."""
        if not results or any("close" in result for result in results):
            # after a CloseSpider, the lease must see the crawl closing
            accepted = self.put(worker, results) if results else []
            return dict(self.lease(worker, want, renew), accepted=accepted)
        try:
            accepted, leases, wait, state = self.frontier.exchange(
                worker, results, min(want, self.batch_size), renew)
            self._forward_close(results)
        except self._errors as exc:
            raise _lost(exc) from exc
        return dict(self._reply(leases, wait, state), accepted=accepted)

    def bye(self, worker: str, refused: str | None = None) -> int:
        if refused:
            log.warning("worker %s refused the crawl: %s", worker, refused)
        try:
            return self.frontier.release_worker(worker)
        except self._errors as exc:
            raise _lost(exc) from exc
