"""The end-of-crawl summary, as printed by the master and by `python -m crawler.status`."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def write_or_log(path: str, text: str) -> None:
    """Write a small file of the crawl's end (stats, failures); a full disk is logged, not
    raised, so the summary is still printed."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        log.error("cannot write %s: %s", path, exc)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary's lines, from a (finished) snapshot."""
    appended = summary.get("appended", {})
    where = ", ".join(f"appended to {path} (which held {appended[path]} before)"
                      if path in appended else f"-> {path}"
                      for path in summary.get("feeds") or [summary["output"]])
    lines = [f"crawl {summary['closed_by']}: {summary['pages_done']} pages done, "
             f"{summary['pages_failed']} failed, {summary['items']} items {where}"]
    if summary.get("recrawl"):
        lines.append("  recrawl: " + ", ".join(f"{count} {verdict}" for verdict, count in
                                               summary["recrawl"].items()))
    for reason, count in sorted(summary["failed_by_reason"].items()):
        lines.append(f"  failed({reason}): {count}")
    if summary.get("item_errors"):
        lines.append(f"  item_error: {summary['item_errors']} items left out (a pipeline "
                     "raised, or a feed could not encode them)")
    if summary["dropped"]:
        lines.append("  links dropped: " + ", ".join(f"{k} {v}" for k, v in
                                                     sorted(summary["dropped"].items())))
    if summary.get("spider_stats"):
        lines.append("  spider stats: " + ", ".join(f"{k} {v}" for k, v in
                                                    summary["spider_stats"].items()))
    lines.append(f"  {summary['seconds']:.1f} s, {summary['pages_per_second']} pages/s")
    if "failures_file" in summary:
        lines.append(f"  failures listed in {summary['failures_file']}")
    return lines
