"""Headers: header fields by name in any case, as requests' CaseInsensitiveDict, for less.

A response's headers are built once per fetch and read several times by the fetcher and
the handler, mostly for names that are absent (Transfer-Encoding, Content-Encoding,
Retry-After, ...): CaseInsensitiveDict answers those by raising and catching a KeyError,
through two Python calls. Here a lookup is one call, and an absent name no exception.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Iterable, Iterator, Mapping


class Headers(MutableMapping):
    """Field values by case-insensitive name; iteration and items() give each name in the
    case it was last set with, in the order names were first set."""

    __slots__ = ("_store",)

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
                 **kwargs: str) -> None:
        self._store: dict[str, tuple[str, Any]] = {}
        if data:
            self.update(data)
        if kwargs:
            self.update(kwargs)

    @classmethod
    def merged(cls, fields: Iterable[tuple[str, str]]) -> "Headers":
        """The fields of a message, a repeated name's values joined by ", " (RFC 9110 5.3)
        under the case it first came in."""
        headers = cls()
        store = headers._store
        for name, value in fields:
            key = name.lower()
            known = store.get(key)
            store[key] = (name, value) if known is None else (known[0], f"{known[1]}, {value}")
        return headers

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """As dict.update, names in any case (a plain dict without a call per name)."""
        if type(other) is dict and not kwargs:
            self._store.update({name.lower(): (name, value) for name, value in other.items()})
        else:
            super().update(other, **kwargs)

    def __getitem__(self, name: str) -> Any:
        return self._store[name.lower()][1]

    def get(self, name: str, default: Any = None) -> Any:
        found = self._store.get(name.lower())
        return default if found is None else found[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._store

    def __setitem__(self, name: str, value: Any) -> None:
        self._store[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._store[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def items(self) -> Any:  # a view of (name, value) pairs, without a call per pair
        return self._store.values()

    def lower_items(self) -> Iterator[tuple[str, Any]]:
        """(lowercased name, value) pairs, as CaseInsensitiveDict.lower_items()."""
        return ((key, pair[1]) for key, pair in self._store.items())

    def copy(self) -> "Headers":
        return Headers(self._store.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.lower_items()) == dict(Headers(other).lower_items())

    def __repr__(self) -> str:
        return repr(dict(self._store.values()))
