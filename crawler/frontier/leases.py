"""Leases: which worker holds which task, until when."""
from __future__ import annotations

import heapq
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(slots=True)
class Lease:
    task: dict[str, Any]
    worker: str
    deadline: float


class Leases:
    """Tasks out with workers, by lease id; ids are unique across master restarts
    (`epoch`), so a result for a lease of an earlier run is recognised as stale."""

    def __init__(self, epoch: str, timeout: float) -> None:
        self.timeout = timeout
        self._leases: dict[str, Lease] = {}
        self._expiry: list[tuple[float, str]] = []
        self._ids = (f"{epoch}-{n}" for n in itertools.count())

    def __len__(self) -> int:
        return len(self._leases)

    def grant(self, task: dict[str, Any], worker: str, now: float) -> str:
        """Lease `task` to `worker` until now + timeout; return the lease id."""
        lease_id = next(self._ids)
        self._leases[lease_id] = Lease(task, worker, now + self.timeout)
        heapq.heappush(self._expiry, (now + self.timeout, lease_id))
        return lease_id

    def get(self, lease_id: str) -> Lease | None:
        """The lease still out under this id, or None."""
        return self._leases.get(lease_id)

    def pop(self, lease_id: str) -> Lease | None:
        """Take a lease out (settled or returned); None when unknown or gone."""
        return self._leases.pop(lease_id, None)

    def renew(self, worker: str, lease_ids: Iterable[str], now: float) -> None:
        """Extend the leases `worker` still holds by a full timeout from now."""
        deadline = now + self.timeout
        for lease_id in lease_ids:
            lease = self._leases.get(lease_id)
            if lease is not None and lease.worker == worker:
                lease.deadline = deadline
                heapq.heappush(self._expiry, (deadline, lease_id))

    def overdue(self, now: float) -> list[str]:
        """Ids of the leases whose deadline has passed (still held: pop them to settle)."""
        expiry, leases, out = self._expiry, self._leases, []
        while expiry and expiry[0][0] <= now:
            lease_id = heapq.heappop(expiry)[1]
            lease = leases.get(lease_id)
            if lease is not None and lease.deadline <= now:
                out.append(lease_id)
        return list(dict.fromkeys(out))  # a renewed lease has two entries in the heap

    def of_worker(self, worker: str) -> list[str]:
        """Ids of every lease `worker` holds."""
        return [i for i, lease in self._leases.items() if lease.worker == worker]

    def by_worker(self) -> Counter:
        """Leases held, by worker."""
        return Counter(lease.worker for lease in self._leases.values())
