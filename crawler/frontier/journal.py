"""The crawl journal: SQLite in WAL mode in JOBDIR, so a killed master can resume.

It records every admitted URL with its state, and every item until the feed file
holds it. A batch of results is committed before the workers' call returns, so
an acknowledged result is never lost to a master crash (a process kill; with
synchronous=NORMAL an OS crash may lose the last commits, never consistency).
Items are written to the feeds by the sink, which records how far each feed file
is good (meta "feed <key>"); on resume each is cut back to its length and later
items re-written, so every feed holds every item exactly once.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import pickle
import sqlite3
import threading
from typing import Any, Callable

from ..errors import UsageError
from ..http.request import extra_fields
from . import saved
from .saved import Saved

# URL states are a log, appended in the order they happen: a sequential append costs a
# fraction of an upsert at a random 16-byte key (the bench: ~80 vs ~300 us of CPU per page
# with 20 new links), and the last row of a fingerprint is its state. Queued rows carry
# the task (url, depth, and any other fields pickled); failed rows the url and reason.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, fp BLOB NOT NULL, state TEXT NOT NULL,
                                url TEXT, depth INTEGER, reason TEXT, extra BLOB);
CREATE TABLE IF NOT EXISTS items (seq INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS robots (origin TEXT PRIMARY KEY, status INTEGER NOT NULL,
                                   body TEXT NOT NULL, fetched_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS validators (seq INTEGER PRIMARY KEY, fp BLOB NOT NULL,
                                       round INTEGER NOT NULL, verdict TEXT, etag TEXT,
                                       last_modified TEXT);
"""
# validators: what a recrawl needs (crawler.frontier.recrawl), a log as well: the last row
# of a fingerprint holds its ETag and Last-Modified; `round` numbers the crawls of a JOBDIR
# (0 the first, then one per --recrawl) and `verdict` says what that round found.
# What compact() deletes: all rows but each URL's last one and its last queued one. Per URL
# with more: its rows' seqs, and those two (one sort by fp: SQLite's work, not Python's).
_SUPERSEDED = ("SELECT group_concat(seq), max(seq), max(iif(state = 'queued', seq, NULL)) AS q "
               "FROM log GROUP BY fp HAVING count(*) > 1 + (coalesce(q, max(seq)) < max(seq))")
# A robots.txt fetched by an earlier run: (origin, status, body, fetched_at as Unix time).
RobotsRow = tuple[str, int, str, float]

log = logging.getLogger(__name__)
# The JOBDIR locks this process holds. A forked child (a local worker) would share each
# (flock locks belong to the open file, not the process) and keep it past the master's
# death, refusing the restart: the child closes its copies at once.
_HELD: set[int] = set()


def _release_in_child() -> None:
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_release_in_child)


def lock_jobdir(jobdir: str) -> int:
    """Make JOBDIR private (0700) and hold its lock for this process's life: a second
    master on the same JOBDIR is refused, naming the first one's pid. Returns the lock's fd."""
    os.makedirs(jobdir, mode=0o700, exist_ok=True)
    os.chmod(jobdir, 0o700)  # it holds the authkey and the crawl's data
    fd = os.open(os.path.join(jobdir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UsageError(f"{jobdir} is in use by another master (pid {holder}); stop it "
                         "first, or give another --jobdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD.add(fd)
    return fd  # kept open: the lock lasts as long as the process


class Journal:
    """One crawl's durable state; methods may be called from any thread."""

    def __init__(self, jobdir: str) -> None:
        self._lock = lock_jobdir(jobdir)
        self.path = os.path.join(jobdir, "journal.sqlite")
        if not os.path.exists(self.path):  # SQLite would create it (and its WAL) 0644
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._local = threading.local()
        try:
            db = self._db()
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='urls'").fetchone():
                raise UsageError(f"journal {self.path} was written by an older version of "
                                 "crawler; finish that crawl with it, or move the JOBDIR away")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT max(seq) FROM items").fetchone()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"journal {self.path} is damaged ({exc}); it cannot be resumed "
                             "safely: move the JOBDIR away to start afresh") from None
        self.next_seq = max(row[0] or 0, self.written_seq()) + 1

    def close(self) -> None:
        """Release the JOBDIR (this thread's connection and the lock)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        if self._lock >= 0:
            _HELD.discard(self._lock)
            os.close(self._lock)
            self._lock = -1

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    # -- meta ------------------------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def put_meta(self, values: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [(k, str(v)) for k, v in values.items()])

    def is_new(self) -> bool:
        """True when nothing was ever admitted in this JOBDIR."""
        return self._db().execute("SELECT 1 FROM log LIMIT 1").fetchone() is None

    def check_same_crawl(self, spider: str, output: str,
                         args: dict[str, str] | None = None) -> None:
        """Refuse to resume a journal with another spider, feeds (`output`, as given by
        feeds.identity) or spider arguments."""
        new = {"spider": spider, "output": output,
               "spider_args": json.dumps(args or {}, sort_keys=True)}
        if self.get("spider") is None:
            self.put_meta(new)
            return
        for key, value in new.items():
            old = self.get(key, "{}" if key == "spider_args" else None)
            if old != value:
                raise UsageError(f"{self.path} belongs to a crawl with {key} {old}, "
                                 f"not {value}")

    # -- URLs and items ----------------------------------------------------------
    def record(self, changes: list[tuple[bytes, str, str | None, dict]],
               items: list[dict], validators: list[tuple] = (),
               robots: list[RobotsRow] = ()) -> list[int]:
        """Commit URL state changes, new items, validators rows (fp, round, verdict, etag,
        last_modified) and robots.txt files fetched at once; return the items' seqs."""
        seqs = list(range(self.next_seq, self.next_seq + len(items)))
        with self._transaction() as db:
            db.executemany("INSERT INTO log (fp, state, url, depth, reason, extra) "
                           "VALUES (?, ?, ?, ?, ?, ?)", [_row(*change) for change in changes])
            db.executemany("INSERT INTO items VALUES (?, ?)",
                           [(seq, pickle.dumps(item, 5)) for seq, item in zip(seqs, items)])
            if validators:
                db.executemany("INSERT INTO validators (fp, round, verdict, etag, "
                               "last_modified) VALUES (?, ?, ?, ?, ?)", validators)
            if robots:
                db.executemany("INSERT OR REPLACE INTO robots VALUES (?, ?, ?, ?)", robots)
        self.next_seq += len(items)
        return seqs

    def robots(self, since: float) -> list[RobotsRow]:
        """The robots.txt files fetched at or after `since` (Unix time), by origin."""
        return self._db().execute("SELECT origin, status, body, fetched_at FROM robots "
                                  "WHERE fetched_at >= ?", (since,)).fetchall()

    def urls(self) -> Saved:
        """Every URL by its last row (crawler.frontier.saved): what a resume starts from."""
        return saved.read(self._db())

    def compact_in_background(self) -> None:
        """compact() on a thread of its own, beside the crawl; a failure is logged (the
        crawl goes on with a longer log)."""
        def run() -> None:
            try:
                removed = self.compact()
            except Exception as exc:  # sqlite3.Error
                log.warning("journal compaction stopped: %r", exc)
                return
            if removed:
                log.info("journal compacted: %d superseded rows removed", removed)
        threading.Thread(target=run, name="compact", daemon=True).start()

    def compact(self, chunk: int = 20_000) -> int:
        """Delete the rows a later row of their URL superseded, `chunk` to a transaction (so
        commits of the running crawl wait at most one chunk); returns how many. Safe to stop
        at any point: a superseded row never decides a URL's state. A URL's last queued row
        is kept even when settled since: a recrawl (begin_round) starts from its task."""
        # Found by SQLite (the GIL is released while it runs): beside the crawl, not in it.
        seqs = [seq for group, last, queued in self._db().execute(_SUPERSEDED)
                for seq in map(int, group.split(",")) if seq != last and seq != queued]
        for start in range(0, len(seqs), chunk):
            with self._transaction() as db:
                db.executemany("DELETE FROM log WHERE seq = ?",
                               [(seq,) for seq in seqs[start:start + chunk]])
        return len(seqs)

    def unwritten_items(self) -> list[tuple[int, dict]]:
        """Items committed but not yet known to be in the feed file, in order."""
        rows = self._db().execute("SELECT seq, data FROM items WHERE seq > ? ORDER BY seq",
                                  (self.written_seq(),))
        return [(seq, pickle.loads(data)) for seq, data in rows]

    def written_seq(self) -> int:
        """The last item every feed is known to hold."""
        return int(self.get("written_seq", "0"))

    def feed_progress(self, key: str) -> tuple[str, int, int] | None:
        """(path, bytes known good, items in them) of one feed; None before it started."""
        value = self.get(f"feed {key}")
        return tuple(json.loads(value)) if value is not None else None

    def mark_written(self, seq: int, progress: dict[str, tuple[str, int, int]]) -> None:
        """Every feed holds every item up to seq: feed `key`'s file `path` in its first
        `size` bytes, `count` items (progress is {key: (path, size, count)})."""
        rows = [(f"feed {key}", json.dumps(list(value))) for key, value in progress.items()]
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [("written_seq", str(seq))] + rows)
            db.execute("DELETE FROM items WHERE seq <= ?", (seq,))

    # -- recrawl rounds ----------------------------------------------------------
    def round(self) -> int:
        """Which crawl of this JOBDIR this is: 0 the first, then one more per --recrawl."""
        return int(self.get("round", "0"))

    def verdicts(self, round_: int) -> dict[str, int]:
        """What round `round_` found so far: {verdict: URLs}."""
        rows = self._db().execute("SELECT verdict, count(*) FROM validators WHERE round=? "
                                  "AND verdict IS NOT NULL GROUP BY verdict", (round_,))
        return dict(rows.fetchall())

    def forget_feeds(self, output: str) -> None:
        """A new round writes feeds of its own (`output`, as feeds.identity gives it):
        forget the last round's."""
        with self._transaction() as db:
            db.execute("DELETE FROM meta WHERE key LIKE 'feed %'")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('output', ?)", (output,))

    def begin_round(self, revisit: Callable[[dict, str | None, str | None], dict]) -> int:
        """Start the next round of a finished crawl, in one transaction: every URL it
        knows is queued again as `revisit(task, etag, last_modified)` makes it (its last
        task, with its last validators; its host is None). Returns how many."""
        db = self._db()
        known = db.execute("SELECT fp, etag, last_modified FROM validators WHERE seq IN "
                           "(SELECT max(seq) FROM validators GROUP BY fp)")
        validators = {fp: (etag, modified) for fp, etag, modified in known}
        before, urls = db.execute("SELECT max(seq), count(DISTINCT fp) FROM log").fetchone()
        rows, none = [], (None, None)
        for fp, url, depth, extra in db.execute(
                "SELECT fp, url, depth, extra FROM log WHERE seq IN (SELECT max(seq) FROM log "
                "WHERE state='queued' GROUP BY fp) ORDER BY seq").fetchall():
            task = {"url": url, "fp": fp, "host": None, "depth": depth}  # (host: not kept)
            if extra is not None:
                task.update(pickle.loads(extra))
            rows.append(_row(fp, "queued", None, revisit(task, *validators.get(fp, none))))
        with self._transaction() as db:
            db.executemany("INSERT INTO log (fp, state, url, depth, reason, extra) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
            if len(rows) == urls:  # every URL has its new last row: the older ones are
                # superseded (what compact() would delete), and go at once, as a range
                db.execute("DELETE FROM log WHERE seq <= ?", (before,))
            db.execute("DELETE FROM meta WHERE key='finished'")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('round', ?)",
                       (str(self.round() + 1),))
        return len(rows)

    def _transaction(self):
        return _Transaction(self._db())


def _row(fp: bytes, state: str, reason: str | None, task: dict) -> tuple:
    if state == "queued":
        extra = extra_fields(task)  # the core fields have columns (host is recomputed)
        return (fp, state, task["url"], task.get("depth", 0), None,
                pickle.dumps(extra, 5) if extra else None)
    if state == "failed":
        return (fp, state, task["url"], None, reason, None)
    return (fp, state, None, None, None, None)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.Error:  # e.g. disk full: undo, so the next BEGIN can start
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.db.in_transaction:
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back by itself (an I/O error ends the transaction)

