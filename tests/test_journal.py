"""crawler.frontier.journal: what a restarted master reads back is what was committed."""
from __future__ import annotations

import os
import random
import sqlite3

import pytest

from crawler.errors import UsageError
from crawler.frontier.journal import Journal
from crawler.http.request import Request


def task(url: str, depth: int = 1, **fields) -> dict:
    return Request(url, **fields).to_task(depth)


def test_each_url_comes_back_in_its_last_state_in_admission_order(tmp_path):
    journal = Journal(str(tmp_path))
    assert journal.is_new()
    a, b, c = task("http://a.test/"), task("http://b.test/x", 3), task("http://c.test/")
    journal.record([(a["fp"], "queued", None, a), (b["fp"], "queued", None, b)], [])
    journal.record([(a["fp"], "done", None, a), (c["fp"], "queued", None, c),
                    (b["fp"], "failed", "http_404", b)], [])
    journal.close()
    journal = Journal(str(tmp_path))
    rows = list(journal.urls())
    assert [(r[0], r[1]) for r in rows] == [(a["fp"], "done"), (b["fp"], "failed"),
                                           (c["fp"], "queued")]
    assert rows[0][4] is None
    assert rows[2][4] == c
    assert rows[1][2:] == ("http://b.test/x", "http_404", None)
    assert not journal.is_new()


def log_rows(tmp_path) -> int:
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    try:
        return db.execute("SELECT count(*) FROM log").fetchone()[0]
    finally:
        db.close()


def test_compaction_keeps_each_urls_last_row_and_its_last_queued_one(tmp_path):
    journal = Journal(str(tmp_path))
    a, b = task("http://a.test/"), task("http://b.test/")
    retried = dict(b, attempt=1)
    journal.record([(a["fp"], "queued", None, a), (b["fp"], "queued", None, b)], [])
    journal.record([(b["fp"], "queued", None, retried), (a["fp"], "done", None, a)], [])
    journal.record([(b["fp"], "queued", None, dict(b, attempt=2))], [])
    assert log_rows(tmp_path) == 5
    before = list(journal.urls())
    assert journal.compact() == 2  # b's first two rows; a keeps its task (for a recrawl)
    assert log_rows(tmp_path) == 3
    assert list(journal.urls()) == before
    assert before[1][4]["attempt"] == 2
    assert journal.compact() == 0


def test_a_recrawl_after_a_compaction_revisits_every_known_url(tmp_path):
    journal = Journal(str(tmp_path))
    a, b, c = task("http://a.test/"), task("http://b.test/", 2), task("http://c.test/")
    journal.record([(t["fp"], "queued", None, t) for t in (a, b, c)], [])
    journal.record([(b["fp"], "queued", None, dict(b, attempt=1)), (a["fp"], "done", None, a),
                    (c["fp"], "failed", "http_404", c)], [])
    journal.record([(b["fp"], "done", None, b)], [])
    list(journal.urls())  # as a resume does, then compacts beside the crawl
    assert journal.compact() == 1  # b's first queued row
    assert journal.begin_round(lambda t, etag, modified: t) == 3
    again = {row[2]: row[4] for row in journal.urls()}
    assert again == {a["url"]: a, b["url"]: dict(b, attempt=1), c["url"]: c}


def test_a_new_round_keeps_only_its_own_rows_of_the_log(tmp_path):
    journal = Journal(str(tmp_path))
    a, b, c = task("http://a.test/"), task("http://b.test/", 2), task("http://c.test/")
    journal.record([(t["fp"], "queued", None, t) for t in (a, b, c)], [])
    journal.record([(a["fp"], "done", None, a), (b["fp"], "queued", None, dict(b, attempt=1)),
                    (c["fp"], "failed", "http_404", c)], [])
    journal.record([(b["fp"], "done", None, b)], [])
    assert journal.begin_round(lambda t, etag, modified: dict(t, revisit={})) == 3
    assert log_rows(tmp_path) == 3  # the rows the new ones supersede are gone
    assert journal.compact() == 0
    journal.close()
    again = {row[2]: (row[1], row[4]) for row in Journal(str(tmp_path)).urls()}
    assert again == {t["url"]: ("queued", dict(t, revisit={}))
                     for t in (a, dict(b, attempt=1), c)}


def test_queued_tasks_keep_every_field(tmp_path):
    journal = Journal(str(tmp_path))
    full = task("http://a.test/p?q=1", 2, callback="parse_item", meta={"k": [1, 2]},
                priority=-4, method="POST", body=b"x=1", headers={"X-A": "1"},
                dont_filter=True)
    retried = dict(task("http://b.test/"), attempt=2)
    journal.record([(full["fp"], "queued", None, full),
                    (retried["fp"], "queued", None, retried)], [])
    assert [row[4] for row in journal.urls()] == [full, retried]


def test_items_until_written(tmp_path):
    journal = Journal(str(tmp_path))
    seqs = journal.record([], [{"n": 1}, {"n": 2}, {"n": 3}])
    assert seqs == [1, 2, 3]
    assert journal.feed_progress("/out.jsonl") is None
    journal.mark_written(2, {"/out.jsonl": ("/out.jsonl", 100, 2),
                             "/o-%(time)s.csv": ("/o-T1.csv", 80, 2)})
    journal.close()
    reopened = Journal(str(tmp_path))
    assert reopened.unwritten_items() == [(3, {"n": 3})]
    assert reopened.written_seq() == 2
    assert reopened.feed_progress("/out.jsonl") == ("/out.jsonl", 100, 2)
    assert reopened.feed_progress("/o-%(time)s.csv") == ("/o-T1.csv", 80, 2)
    assert reopened.record([], [{"n": 4}]) == [4]


def test_a_journal_of_the_older_format_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    db.execute("CREATE TABLE urls (fp BLOB PRIMARY KEY, state TEXT, url TEXT, reason TEXT, "
               "task BLOB)")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="older version"):
        Journal(str(tmp_path))


def test_a_jobdir_is_private_and_held_by_one_journal(tmp_path):
    jobdir = tmp_path / "job"
    journal = Journal(str(jobdir))
    assert jobdir.stat().st_mode & 0o777 == 0o700
    assert (jobdir / "journal.sqlite").stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError, match=f"in use by another master \\(pid {os.getpid()}\\)"):
        Journal(str(jobdir))
    journal.close()
    Journal(str(jobdir)).close()  # free again


def test_a_resume_with_other_spider_arguments_is_refused(tmp_path):
    journal = Journal(str(tmp_path))
    journal.check_same_crawl("books", "out.jsonl", {"category": "poetry"})
    journal.check_same_crawl("books", "out.jsonl", {"category": "poetry"})  # the same: fine
    with pytest.raises(UsageError, match="spider_args"):
        journal.check_same_crawl("books", "out.jsonl", {"category": "travel"})


def _random_log(journal, rng, urls: int = 300, steps: int = 1200) -> dict:
    """Commit a random history (admissions, retries, settlements, recrawls) and return
    what the log must give back: {fp: (state, url, reason, task)} by the last change."""
    tasks = [task(f"http://h{i % 7}.test/p{i}", i % 4, **({"priority": i % 3, "meta": {"i": i}}
                                                        if i % 5 == 0 else {}))
             for i in range(urls)]
    expected: dict = {}
    for _ in range(steps // 40):
        changes = []
        for _ in range(40):
            t = rng.choice(tasks)
            state = rng.choice(["queued", "queued", "done", "failed"])
            if state == "queued" and rng.random() < 0.3:
                t = dict(t, attempt=rng.randint(1, 3))
            reason = "http_500" if state == "failed" else None
            changes.append((t["fp"], state, reason, t))
            known = expected.get(t["fp"])
            expected[t["fp"]] = (state, t["url"] if state != "done" else None, reason,
                                 t if state == "queued" else None,
                                 known[4] if known else len(expected))
        journal.record(changes, [])
    return expected


def _as_rows(expected: dict) -> list[tuple]:
    ordered = sorted(expected.items(), key=lambda kv: kv[1][4])  # first admitted first
    return [(fp, state, url, reason, t) for fp, (state, url, reason, t, _) in ordered]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_log_comes_back_exactly_by_each_urls_last_row(tmp_path, seed):
    journal = Journal(str(tmp_path))
    expected = _random_log(journal, random.Random(seed))
    assert list(journal.urls()) == _as_rows(expected)
    journal.compact()  # a URL's first rows may go: the same URLs, in another order
    assert sorted(journal.urls()) == sorted(_as_rows(expected))


@pytest.mark.parametrize("odd", [
    {"fp": b"short"},                                          # not a 16-byte fingerprint
    {"url": "http://odd.test/a\nb"},                           # a newline in a URL
    {"depth": 2.5},                                            # a depth that is not an int
])
def test_a_log_the_bulk_read_cannot_split_is_read_exactly_row_by_row(tmp_path, odd):
    journal = Journal(str(tmp_path))
    expected = _random_log(journal, random.Random(4), urls=50, steps=200)
    strange = dict(task("http://odd.test/x"), **odd)
    journal.record([(strange["fp"], "queued", None, strange)], [])
    expected[strange["fp"]] = ("queued", strange["url"], None, strange, len(expected))
    assert list(journal.urls()) == _as_rows(expected)
