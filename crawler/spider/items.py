"""Declared items, as a Scrapy project's `items.py` writes them: `Item` and `Field`.

An Item is a mapping that accepts only its declared fields, so a misspelt field name is an
error where it is set instead of a silent extra column. Only plain data travels: a worker
turns each item a callback yields into a dict before it goes to the master, so pipelines and
feeds see dicts (with the fields that were set, in the order they were set).
"""
from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any, Iterator


class Field(dict):
    """A declared field; its keys are metadata for whoever reads them (an ItemLoader's
    `input_processor` / `output_processor`, a serializer ...)."""


class Item(MutableMapping):
    """A mapping of declared fields: subclass it with `name = Field()` class attributes."""

    fields: dict[str, Field] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {name: value for name, value in vars(cls).items() if isinstance(value, Field)}
        cls.fields = {**cls.fields, **declared}
        for name in declared:  # item.name would otherwise read the Field, not the value
            delattr(cls, name)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._values: dict[str, Any] = {}
        if args or kwargs:
            self.update(*args, **kwargs)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.fields:
            raise KeyError(f"{type(self).__name__} does not support field: {key}")
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name in type(self).fields:
            raise AttributeError(f"use item[{name!r}] to read a field's value")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            raise AttributeError(f"use item[{name!r}] = {value!r} to set a field's value")
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._values!r})"

    def copy(self) -> Item:
        """A shallow copy (values shared)."""
        return type(self)(self)

    def deepcopy(self) -> Item:
        """A copy whose values are copies too."""
        return copy.deepcopy(self)
