"""`ItemLoader`, as in Scrapy: the `itemloaders` library fed from a response.

Processors come from `itemloaders.processors` (TakeFirst, MapCompose, Join, ...), as Scrapy's
own docs now import them. Field metadata of a `crawler.Item` (`Field(output_processor=...)`)
is read by the loader like a Scrapy Item's.
"""
from __future__ import annotations

from collections.abc import KeysView
from types import MappingProxyType
from typing import Any, Iterator

import itemloaders
from itemadapter import ItemAdapter
from itemadapter.adapter import AdapterInterface

from ..http.response import Response
from .items import Item


class ItemLoader(itemloaders.ItemLoader):
    """Fills an item from selectors of `response` (or of `selector`); `load_item()` gives it.
    Without an item, a dict is filled (or the class's `default_item_class`)."""

    def __init__(self, item: Any = None, selector: Any = None, response: Response | None = None,
                 parent: itemloaders.ItemLoader | None = None, **context: Any) -> None:
        if selector is None and response is not None:
            selector = response.selector
        context["response"] = response
        super().__init__(item=item, selector=selector, parent=parent, **context)


class _DeclaredItemAdapter(AdapterInterface):
    """Lets itemadapter (which the loader uses) read and fill a crawler.Item."""

    @classmethod
    def is_item_class(cls, item_class: type) -> bool:
        return issubclass(item_class, Item)

    @classmethod
    def get_field_meta_from_class(cls, item_class: type, field_name: str) -> MappingProxyType:
        if field_name not in item_class.fields:
            raise KeyError(f"{item_class.__name__} does not support field: {field_name}")
        return MappingProxyType(item_class.fields[field_name])

    @classmethod
    def get_field_names_from_class(cls, item_class: type) -> list[str]:
        return list(item_class.fields)

    def field_names(self) -> KeysView:
        return KeysView(self.item.fields)

    def __getitem__(self, name: str) -> Any:
        return self.item[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self.item[name] = value

    def __delitem__(self, name: str) -> None:
        del self.item[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.item)

    def __len__(self) -> int:
        return len(self.item)


if _DeclaredItemAdapter not in ItemAdapter.ADAPTER_CLASSES:
    ItemAdapter.ADAPTER_CLASSES.appendleft(_DeclaredItemAdapter)
