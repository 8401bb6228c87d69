"""crawler.frontier.journal: what a restarted master reads back is what was committed."""
from __future__ import annotations

import os
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


def test_a_resume_compacts_the_log_to_one_row_per_url(tmp_path):
    journal = Journal(str(tmp_path))
    a, b = task("http://a.test/"), task("http://b.test/")
    retried = dict(b, attempt=1)
    journal.record([(a["fp"], "queued", None, a), (b["fp"], "queued", None, b)], [])
    journal.record([(b["fp"], "queued", None, retried), (a["fp"], "done", None, a)], [])
    journal.record([(b["fp"], "queued", None, dict(b, attempt=2))], [])
    assert log_rows(tmp_path) == 5
    before = list(journal.urls())
    assert journal.compact() == 3
    assert log_rows(tmp_path) == 2  # one per URL
    assert list(journal.urls()) == before
    assert before[1][4]["attempt"] == 2
    assert journal.compact() == 0


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
