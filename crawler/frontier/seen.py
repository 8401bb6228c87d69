"""What the frontier has seen: each admitted fingerprint and the state it is in.

The first fingerprints go to a plain dict (fast: ~100 bytes each with the bytes object);
beyond `dict_max` they go to a FingerprintTable, which keeps each as 17 bytes (the 16-byte
fingerprint and a state byte) in small byte arrays: ~22 bytes each in all, at ~1 us more
per lookup in CPython. Both are exact: no URL is ever taken for one it is not.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from hashlib import blake2b

QUEUED, LEASED, DONE, FAILED = "queued", "leased", "done", "failed"
_CODES = {QUEUED: 1, LEASED: 2, DONE: 3, FAILED: 4}
_STATES = {code: state for state, code in _CODES.items()}
_FP = 16  # bytes of a fingerprint (crawler.urls.fingerprint)
_RECORD = _FP + 1  # and its state
_LOAD = 24  # records per bucket, on average, before one more bucket is split off


def _key(fp: bytes) -> bytes:
    # Records have a fixed size; any other length (tests use short ones) is hashed to it.
    return fp if len(fp) == _FP else blake2b(fp, digest_size=_FP).digest()


class FingerprintTable:
    """A hash table of fixed-size records in byte arrays, grown by linear hashing: one
    bucket is split at a time, so no insertion ever rehashes the whole table.

    Lookups need no lock against a concurrent split (workers' pre-filter calls run on
    other threads): a lookup racing a split can only miss, which the caller treats as
    "not seen" and the master's own check under its lock then settles."""

    def __init__(self, bits: int = 10) -> None:
        self._bits, self._split, self.count = bits, 0, 0
        self._buckets = [bytearray() for _ in range(1 << bits)]

    def _bucket(self, fp: bytes) -> int:
        h, low = hash(fp), (1 << self._bits) - 1
        index = h & low
        return h & (low << 1 | 1) if index < self._split else index

    def _find(self, bucket: bytearray, fp: bytes) -> int:
        at = bucket.find(fp)
        while at > 0 and at % _RECORD:  # a match across two records: keep looking
            at = bucket.find(fp, at + 1)
        return at

    def get(self, fp: bytes) -> str | None:
        fp = _key(fp)
        bucket = self._buckets[self._bucket(fp)]
        at = self._find(bucket, fp)
        return _STATES[bucket[at + _FP]] if at >= 0 else None

    def __contains__(self, fp: bytes) -> bool:
        # _bucket and _find in line: this runs for every link a page brings past the dict
        if len(fp) != _FP:
            fp = _key(fp)
        h, low = hash(fp), (1 << self._bits) - 1
        index = h & low
        bucket = self._buckets[h & (low << 1 | 1) if index < self._split else index]
        at = bucket.find(fp)
        while at > 0 and at % _RECORD:
            at = bucket.find(fp, at + 1)
        return at >= 0

    def set(self, fp: bytes, state: str) -> None:
        """Record fp's state, adding fp when new."""
        fp = _key(fp)
        bucket = self._buckets[self._bucket(fp)]
        at = self._find(bucket, fp)
        if at >= 0:
            bucket[at + _FP] = _CODES[state]
        else:
            self.add(fp, state)

    def add(self, fp: bytes, state: str) -> None:
        """Add a fingerprint the caller has just found absent (one lookup fewer)."""
        fp = _key(fp)
        self._buckets[self._bucket(fp)] += fp + bytes((_CODES[state],))  # whole records only
        self.count += 1
        if self.count > _LOAD * len(self._buckets):
            self._split_one()

    def load(self, items: Iterable[tuple[bytes, str]], count: int) -> None:
        """Add `count` fingerprints known to be absent (a resume's): into an empty table
        each bucket is joined once, not grown and split record by record."""
        if self.count:
            for fp, state in items:
                self.add(fp, state)
            return
        bits = self._bits
        while count > _LOAD * (1 << bits):
            bits += 1
        mask, records = (1 << bits) - 1, [[] for _ in range(1 << bits)]
        codes = {state: bytes((code,)) for state, code in _CODES.items()}
        for fp, state in items:
            fp = fp if len(fp) == _FP else _key(fp)
            records[hash(fp) & mask].append(fp + codes[state])
        self._buckets = [bytearray(b"".join(bucket)) for bucket in records]
        self._bits, self._split, self.count = bits, 0, count

    def _split_one(self) -> None:
        """Move the records of the next bucket whose hash has the next bit set into a new
        bucket; once all are split, addresses take one bit more."""
        old, high = self._buckets[self._split], 1 << self._bits
        keep, move, records = bytearray(), bytearray(), bytes(old)
        for at in range(0, len(records), _RECORD):
            (move if hash(records[at:at + _FP]) & high else keep).extend(
                records[at:at + _RECORD])
        # The moved records appear in the new bucket before they leave the old one.
        self._buckets.append(move)
        self._buckets[self._split] = keep
        self._split += 1
        if self._split == high:
            self._bits, self._split = self._bits + 1, 0

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        for bucket in list(self._buckets):
            for at in range(0, len(bucket), _RECORD):
                yield bytes(bucket[at:at + _FP]), _STATES[bucket[at + _FP]]


class SeenStore(Mapping):
    """Fingerprint -> state (QUEUED, LEASED, DONE, FAILED); shared with workers as a
    registered proxy (get, in, len, unseen)."""

    def __init__(self, dict_max: int = 2_000_000) -> None:
        self.dict_max = dict_max
        self.front: dict[bytes, str] = {}  # the first dict_max fingerprints
        self.table = FingerprintTable()    # the rest

    def __len__(self) -> int:
        return len(self.front) + self.table.count

    def __iter__(self) -> Iterator[bytes]:
        yield from self.front
        for fp, _ in self.table:
            yield fp

    def __getitem__(self, fp: bytes) -> str:
        state = self.get(fp)
        if state is None:
            raise KeyError(fp)
        return state

    def get(self, fp: bytes, default: str | None = None) -> str | None:
        state = self.front.get(fp)
        if state is None and self.table.count:
            state = self.table.get(fp)
        return default if state is None else state

    def __contains__(self, fp: object) -> bool:
        return fp in self.front or (self.table.count > 0 and fp in self.table)

    def __setitem__(self, fp: bytes, state: str) -> None:
        front, table = self.front, self.table
        # An empty table is not searched: a resume sets millions of states
        if fp in front or (len(front) < self.dict_max and (not table.count or fp not in table)):
            front[fp] = state
        else:
            table.set(fp, state)

    def load(self, states: dict[bytes, str]) -> None:
        """Set many states at once (a resume's). An empty store takes `states` over as its
        dict (no copy), the fingerprints past dict_max moved to the table in bulk."""
        if self.front or self.table.count:
            for fp, state in states.items():
                self[fp] = state
            return
        self.front = states
        overflow = len(states) - self.dict_max
        if overflow > 0:  # the last ones: the dict keeps the first dict_max, as it fills
            self.table.load([states.popitem() for _ in range(overflow)], overflow)

    def unseen(self, fingerprints: list[bytes]) -> list[bytes]:
        """The fingerprints not yet known, in one call (workers pre-filter with it)."""
        front, table = self.front, self.table
        if not table.count:
            return [fp for fp in fingerprints if fp not in front]
        return [fp for fp in fingerprints if fp not in front and fp not in table]
