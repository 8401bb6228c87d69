"""The Redis frontier's snapshot, shaped as the embedded one's (crawler.status renders it)."""
from __future__ import annotations

from collections import Counter
from typing import Any


def snapshot(frontier: Any, top: int) -> dict[str, Any]:
    """Totals from every shard in one round trip, the top hosts' rows in a second."""
    client, prefixes = frontier.client, frontier.prefixes
    now = float(frontier.clock()) if frontier.clock else _server_time(client)
    pipe = client.pipeline(transaction=False)
    for p in prefixes:
        pipe.hgetall(p + "stats")
        pipe.hvals(p + "leases")
        pipe.scard(p + "hosts")
        pipe.zcount(p + "qlen", 1, "+inf")
        pipe.zcount(p + "ready", f"({now}", "+inf")
        pipe.zrevrange(p + "qlen", 0, top - 1, withscores=True)
        pipe.zrevrange(p + "hfail", 0, top - 1, withscores=True)
        pipe.hkeys(p + "stats")
    replies = pipe.execute()
    stats: Counter = Counter()
    leases: Counter = Counter()
    queued = known = with_work = waiting = 0
    by_queue, by_failures, reasons = [], [], set()
    for k, p in enumerate(prefixes):
        raw, vals, hosts, work, wait, q_top, f_top, _ = replies[8 * k:8 * k + 8]
        for key, value in raw.items():
            name = key.decode()
            if name == "queued":
                queued += int(value)
            elif int(value):
                stats[name] += int(value)
                if name.startswith("failed/"):
                    reasons.add(name[7:])
        for value in vals:
            leases[value.partition(b"\t")[0].decode()] += 1
        known, with_work, waiting = known + hosts, with_work + work, waiting + wait
        by_queue += [(p, h.decode(), n) for h, n in q_top if n > 0]
        by_failures += [(p, h.decode(), n) for h, n in f_top if n > 0]
    by_queue = sorted(by_queue, key=lambda r: -r[2])[:top]
    by_failures = sorted(by_failures, key=lambda r: -r[2])[:top]
    rows = _rows(frontier, by_queue + by_failures, now)
    return {
        "stats": dict(stats), "queued": queued, "in_flight": sum(leases.values()),
        "hosts": {"known": known, "with_work": with_work, "waiting": waiting,
                  "by_queue": rows[:len(by_queue)], "by_failures": rows[len(by_queue):]},
        "failure_examples": _examples(client, prefixes, reasons),
        "leases_by_worker": leases,
    }


def _server_time(client: Any) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def _rows(frontier: Any, hosts: list[tuple[str, str, float]], now: float) -> list[dict]:
    pipe = frontier.client.pipeline(transaction=False)
    for p, host, _ in hosts:
        pipe.hgetall(p + "h:" + host)
        pipe.zscore(p + "qlen", host)
        pipe.hvals(p + "robots:" + host)
    replies = pipe.execute()
    rows = []
    for i, (_, host, _) in enumerate(hosts):
        h, queued, robots = replies[3 * i:3 * i + 3]
        get = lambda k, d=0: h.get(k.encode(), d)  # noqa: E731
        err = get("err", None)
        rows.append({"host": host, "queued": int(queued or 0), "in_flight": int(get("inflight")),
                     "done": int(get("done")), "failed": int(get("failed")),
                     "delay": float(get("delay")),
                     "next_in": round(max(0.0, float(get("next")) - now), 3),
                     "robots": _robots_state(frontier, robots),
                     "last_error": err.decode() if err else None})
    return rows


def _robots_state(frontier: Any, values: list[bytes]) -> str:
    if frontier.robots_agent is None:
        return "off"
    if not values or any(v == b"" for v in values):
        return "pending"
    return "unavailable" if any(v.startswith(b"unavailable") for v in values) else "ok"


def _examples(client: Any, prefixes: list[str], reasons: set[str]) -> dict[str, list[str]]:
    if not reasons:
        return {}
    pipe = client.pipeline(transaction=False)
    order = [(p, r) for p in prefixes for r in sorted(reasons)]
    for p, r in order:
        pipe.lrange(p + "ex:" + r, 0, 2)
    examples: dict[str, list[str]] = {}
    for (_, r), urls in zip(order, pipe.execute()):
        examples.setdefault(r, []).extend(u.decode() for u in reversed(urls))
    return {r: urls[-3:] for r, urls in examples.items()}
