"""test_frontier's tests again, on a frontier that keeps every fingerprint in the compact
table (no dict) and spills every queued URL but one to disk: the same behaviour."""
import functools

import pytest

import test_frontier as base
from crawler.frontier import Frontier

for _name in dir(base):
    if _name.startswith("test_"):
        globals()[_name] = getattr(base, _name)


@pytest.fixture(autouse=True)
def compact_and_spilled(monkeypatch, tmp_path):
    monkeypatch.setattr(base, "Frontier", functools.partial(
        Frontier, seen_dict_max=0, memory_queue=1, spill_dir=str(tmp_path)))
