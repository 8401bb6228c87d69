"""The seen store: a dict for the first fingerprints, a compact table for the rest."""
import os
import random

from crawler.frontier import DONE, FAILED, LEASED, QUEUED
from crawler.frontier.seen import FingerprintTable, SeenStore


def fps(n, seed):
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(n)]


def test_table_finds_every_fingerprint_through_many_splits():
    table, known = FingerprintTable(bits=2), fps(30_000, 1)
    for i, fp in enumerate(known):
        table.set(fp, (QUEUED, LEASED, DONE, FAILED)[i % 4])
    assert table.count == 30_000
    assert all(table.get(fp) == (QUEUED, LEASED, DONE, FAILED)[i % 4]
               for i, fp in enumerate(known))
    assert not any(fp in table for fp in fps(30_000, 2))
    assert dict(table) == {fp: (QUEUED, LEASED, DONE, FAILED)[i % 4]
                           for i, fp in enumerate(known)}


def test_table_updates_a_state_in_place():
    table, fp = FingerprintTable(), os.urandom(16)
    table.set(fp, QUEUED)
    table.set(fp, DONE)
    assert (table.count, table.get(fp)) == (1, DONE)


def test_a_fingerprint_across_two_records_is_not_a_match():
    table = FingerprintTable(bits=0)  # one bucket: records side by side
    first, second = bytes(range(16)), bytes(range(16, 32))
    table.set(first, QUEUED)
    table.set(second, QUEUED)
    straddling = bytes(range(8, 16)) + b"\x01" + bytes(range(16, 23))  # ends of both
    assert straddling not in table


def test_store_spans_the_dict_and_the_table():
    store, known = SeenStore(dict_max=100), fps(1000, 3)
    for fp in known:
        store[fp] = QUEUED
    assert (len(store.front), store.table.count, len(store)) == (100, 900, 1000)
    store[known[5]] = DONE      # in the dict
    store[known[500]] = FAILED  # in the table
    assert (store[known[5]], store[known[500]], store.get(known[7])) == (DONE, FAILED, QUEUED)
    assert set(store) == set(known)
    fresh = fps(10, 4)
    assert store.unseen(known[95:105] + fresh) == fresh


def test_store_takes_fingerprints_of_any_length():
    store = SeenStore(dict_max=0)
    store[b"http://a.example/x"] = DONE
    assert store.get(b"http://a.example/x") == DONE
    assert b"http://a.example/y" not in store


def test_a_bulk_load_is_exact_in_the_dict_and_the_table():
    known, states = fps(5000, 5), (QUEUED, DONE, FAILED)
    store = SeenStore(dict_max=1000)
    store.load({fp: states[i % 3] for i, fp in enumerate(known)})
    assert (len(store.front), store.table.count, len(store)) == (1000, 4000, 5000)
    assert list(store.front) == known[:1000]  # the first ones, as when set one by one
    assert all(store[fp] == states[i % 3] for i, fp in enumerate(known))
    fresh = fps(1000, 6)
    assert store.unseen(known + fresh) == fresh
    for fp in fresh:  # the loaded table grows and splits on as usual
        store[fp] = LEASED
    store[known[4999]] = DONE
    assert all(store[fp] == LEASED for fp in fresh) and store[known[4999]] == DONE
    assert len(store) == 6000


def test_a_bulk_load_into_a_store_in_use_overrides_known_states():
    store, known = SeenStore(dict_max=10), fps(30, 7)
    for fp in known[:20]:
        store[fp] = QUEUED
    store.load({fp: DONE for fp in known[10:30]})
    assert [store[fp] for fp in known] == [QUEUED] * 10 + [DONE] * 20
    assert len(store) == 30


def test_a_table_loaded_in_bulk_takes_fingerprints_of_any_length():
    table = FingerprintTable(bits=1)
    table.load([(b"short", DONE), (os.urandom(16), QUEUED)], 2)
    assert table.get(b"short") == DONE and b"other" not in table and table.count == 2
