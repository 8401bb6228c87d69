"""A worker's account of its work between the fetcher threads and the master: leases held,
results waiting to be sent (and resent after a lost master: the master ignores repeats by
lease id), and the links the master has already taken, so they are not sent again.

Fetcher threads only call done(); everything else runs on the coordinator thread.
"""
from __future__ import annotations

import queue
import time

_SENT_MAX = 500_000  # links remembered as sent before the memory is cleared
_PUSHBACK = frozenset({429, 503})  # answers that ask a crawler to slow down
_PUSHBACK_REASONS = frozenset({"http_429", "http_503"})


class Ledger:
    """Leases held and results not yet acknowledged by the master."""

    def __init__(self) -> None:
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.pending: list[dict] = []   # results not yet acknowledged, oldest first
        self.held: set[str] = set()     # lease ids taken and not yet acknowledged
        self.first_pending = 0.0        # when the oldest unsent result arrived
        self.pushback = 0  # results that were 429/503 answers (the autoscaler reads it)
        self._sent: set[bytes] = set()

    def done(self, task: dict, result: dict) -> None:
        """A fetcher thread's result for `task` (thread-safe)."""
        result["lease"] = task["lease"]
        self._outbox.put(result)

    def collect(self) -> int:
        """Move the results the threads handed over to pending; how many came."""
        got = 0
        while True:
            try:
                result = self._outbox.get_nowait()
            except queue.Empty:
                return got
            if not self.pending:
                self.first_pending = time.monotonic()
            self.pending.append(result)
            got += 1
            if result.get("status") in _PUSHBACK or result.get("reason") in _PUSHBACK_REASONS:
                self.pushback += 1

    def outstanding(self) -> int:
        """Tasks queued or running (leased, no result yet)."""
        return len(self.held) - len(self.pending)

    def leased(self, tasks: list[dict]) -> None:
        self.held.update(task["lease"] for task in tasks)

    def batch(self) -> list[dict]:
        """The pending results to send, without the links this worker sent before (the
        master would drop them)."""
        sent = self._sent
        for result in self.pending:
            if result.get("requests"):
                result["requests"] = [t for t in result["requests"]
                                      if t["fp"] not in sent or t.get("dont_filter")]
        return self.pending[:]

    def renewals(self, batch: list[dict]) -> list[str]:
        """Leases to renew: those held, but the ones `batch` settles."""
        settled = {r["lease"] for r in batch}
        return [lease for lease in self.held if lease not in settled]

    def settled(self, batch: list[dict], accepted: list[str]) -> None:
        """The master answered for `batch`: forget it; remember the links it took."""
        taken = set(accepted)
        del self.pending[:len(batch)]
        self.held.difference_update(r["lease"] for r in batch)
        # Only links the master has taken may be skipped from now on: a result it
        # ignored (a late one, or sent to a master that died) must not hide its links.
        if len(self._sent) > _SENT_MAX:
            self._sent.clear()
        self._sent.update(t["fp"] for r in batch if r["lease"] in taken
                          for t in r.get("requests", ()))
