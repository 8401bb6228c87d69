"""/metrics: the snapshot in Prometheus' text exposition format (version 0.0.4)."""
from __future__ import annotations

from typing import Any, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[dict[str, str], float]


def render(snap: dict[str, Any]) -> str:
    """Counters and gauges of one snapshot."""
    hosts = snap["hosts"]
    families = [
        ("crawler_pages_done_total", "counter", "Pages done: a response was recorded.",
         [({}, snap["pages_done"])]),
        ("crawler_pages_failed_total", "counter", "Pages failed, by reason.",
         _labelled("reason", snap["failed_by_reason"])),
        ("crawler_items_total", "counter", "Items written to the output.",
         [({}, snap["items"])]),
        ("crawler_items_dropped_total", "counter", "Items dropped by item pipelines.",
         [({}, snap["items_dropped"])]),
        ("crawler_bytes_total", "counter", "Response body bytes downloaded (decoded).",
         [({}, snap["bytes"])]),
        ("crawler_retries_total", "counter", "Requests retried.", [({}, snap["retries"])]),
        ("crawler_links_dropped_total", "counter", "Extracted links dropped, by reason.",
         _labelled("reason", snap["dropped"])),
        ("crawler_queued", "gauge", "URLs waiting in the frontier.", [({}, snap["queued"])]),
        ("crawler_in_flight", "gauge", "URLs leased to workers now.",
         [({}, snap["in_flight"])]),
        ("crawler_workers", "gauge", "Workers connected.", [({}, snap["workers_connected"])]),
        ("crawler_hosts", "gauge", "Hosts: known, with work, waiting on their delay.",
         _labelled("state", {"known": hosts["known"], "with_work": hosts["with_work"],
                             "waiting": hosts["waiting"]})),
        ("crawler_elapsed_seconds", "gauge", "Seconds since the master started.",
         [({}, snap["seconds"])]),
    ]
    return "".join(_family(*f) for f in families)


def _labelled(label: str, counts: dict[str, float]) -> list[Sample]:
    return [({label: key}, value) for key, value in sorted(counts.items())]


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{inner}}} {_number(value)}" if inner else
                     f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
