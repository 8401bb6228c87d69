"""The last state of every URL in a journal's log, read in bulk for a resume.

A resume reads every row of the log (1.5 rows per URL after a crash: millions). Fetched as
rows, the sqlite3 module builds a tuple and an object per value, most of a resume's time.
Here the log comes back as ONE row of aggregates (every fingerprint joined, a letter per
state, the URLs joined by newlines...), which C loops split (struct, bytes.split, zip, dict).
It stays exact: a log these columns cannot describe exactly (a fingerprint that is not 16
bytes, a newline in a URL, a state or depth of another kind) is read row by row instead.
"""
from __future__ import annotations

import gc
import pickle
import re
import sqlite3
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Iterator

from ..urls import host_of
from .seen import DONE, FAILED, QUEUED

_FP = 16  # bytes of a fingerprint (crawler.urls.fingerprint)
_LETTER = {"q": QUEUED, "Q": QUEUED, "d": DONE, "f": FAILED}
_ONE = {state: state for state in (QUEUED, DONE, FAILED)}
# Aggregates over a scan of the whole table take its rows in rowid order, which is seq:
# the log's order. A letter per row: its state (Q: queued with extra fields), or ? for a
# row these columns cannot give exactly. NULLs become '': one piece per row in each column.
_BULK = ("SELECT group_concat(CASE length(fp) WHEN 16 THEN CASE state WHEN 'done' THEN 'd' "
         "WHEN 'queued' THEN CASE WHEN typeof(depth) <> 'integer' THEN '?' "
         "WHEN extra IS NULL THEN 'q' ELSE 'Q' END WHEN 'failed' THEN 'f' ELSE '?' END "
         "ELSE '?' END, ''), CAST(group_concat(fp, '') AS BLOB), "
         "CAST(group_concat(ifnull(url, ''), char(10)) AS BLOB), "
         "group_concat(ifnull(depth, ''), ',') FROM log")


@dataclass
class Saved:
    """Each URL of a log by its last row. Iterating gives (fp, state, url, reason, task)
    per URL in the order first admitted, task only for queued ones."""

    states: dict[bytes, str]  # fp -> last state, in the order first admitted
    # (order, url, fp, depth, extra) of the URLs queued, by their last row, in log order:
    # `order` counts rows (below `rows`), extra is the fields beyond the core ones or None
    queued: list[tuple[int, bytes, bytes, int, dict | None]]
    failed: list[tuple[bytes, str, str | None]]  # (fp, url, reason), in log order
    rows: int

    def __iter__(self) -> Iterator[tuple[bytes, str, str | None, str | None, dict | None]]:
        queued = {entry[2]: entry for entry in self.queued}
        failed = {fp: (url, reason) for fp, url, reason in self.failed}
        for fp, state in self.states.items():
            if state == QUEUED:
                _, url, _, depth, extra = queued[fp]
                text = url.decode()
                yield fp, state, text, None, {"url": text, "fp": fp, "host": host_of(text),
                                              "depth": depth, **(extra or {})}
            else:
                yield fp, state, *failed.get(fp, (None, None)), None


def read(db: sqlite3.Connection) -> Saved:
    """The log of `db` (a journal's connection) in one read transaction."""
    with collector_paused():
        db.execute("BEGIN")
        try:
            return _bulk(db) or _by_rows(db)
        finally:
            db.execute("COMMIT")


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while millions of objects are made that hold no
    cycles (tuples, lists): it would walk them again and again (~10% of a resume)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _bulk(db: sqlite3.Connection) -> Saved | None:
    """The log from one row of aggregates; None when they cannot describe it exactly."""
    letters, fps, urls, depths = db.execute(_BULK).fetchone()
    if not letters:
        return Saved({}, [], [], 0)
    urls = urls.split(b"\n")
    # length() counts a text's characters: the bytes in all tell a 16-character text apart
    if "?" in letters or len(fps) != _FP * len(letters) or len(urls) != len(letters):
        return None  # or a URL with a newline in it: one piece more
    fps = list(map(itemgetter(0), struct.iter_unpack(f"{_FP}s", fps)))
    states = dict(zip(fps, range(len(fps))))  # the last row of each fingerprint wins
    queued, failed = [], []
    for fp, at in states.items():  # values replaced in place: no second dict
        letter = letters[at]
        if letter != "d":
            (failed if letter == "f" else queued).append(at)
        states[fp] = _LETTER[letter]
    queued.sort()
    depths = depths.split(",")
    entries = list(zip(queued, map(urls.__getitem__, queued), map(fps.__getitem__, queued),
                       map(int, map(depths.__getitem__, queued)), repeat(None)))
    if "Q" in letters:
        _add_extras(db, entries, letters)
    return Saved(states, entries, _failures(db, failed, fps, urls, letters), len(letters))


def _add_extras(db: sqlite3.Connection, entries: list[tuple], letters: str) -> None:
    """Put each entry's extra fields (pickled in their rows) in place of its None."""
    blobs = db.execute("SELECT extra FROM log WHERE state = 'queued' AND extra IS NOT NULL")
    blobs = blobs.fetchall()
    blob_at = dict(zip((m.start() for m in re.finditer("Q", letters)), blobs))
    for n, (at, url, fp, depth, _) in enumerate(entries):
        blob = blob_at.get(at)
        if blob is not None:
            entries[n] = (at, url, fp, depth, pickle.loads(blob[0]))


def _failures(db: sqlite3.Connection, failed: list[int], fps: list[bytes], urls: list[bytes],
              letters: str) -> list[tuple[bytes, str, str | None]]:
    """(fp, url, reason) of the rows at `failed`."""
    if not failed:
        return []
    reasons = db.execute("SELECT reason FROM log WHERE state = 'failed'").fetchall()
    reason_at = dict(zip((m.start() for m in re.finditer("f", letters)), reasons))
    return [(fps[at], urls[at].decode(), reason_at[at][0]) for at in sorted(failed)]


def _by_rows(db: sqlite3.Connection) -> Saved:
    """The log read row by row: slower, for any log."""
    rows = db.execute("SELECT fp, state, CAST(url AS BLOB), depth, reason, extra FROM log")
    last: dict[bytes, tuple] = {}
    count = 0
    for count, row in enumerate(rows, 1):
        last[row[0]] = (count - 1, *row)
    states, entries, failed = {}, [], []
    for fp, (at, _, state, url, depth, reason, extra) in last.items():
        states[fp] = _ONE.get(state, state)  # one string per state, not one per URL
        if state == QUEUED:
            entries.append((at, url, fp, depth, pickle.loads(extra) if extra else None))
        elif state == FAILED:
            failed.append((at, fp, url.decode() if url is not None else None, reason))
    entries.sort()
    failed.sort()
    return Saved(states, entries, [row[1:] for row in failed], count)
