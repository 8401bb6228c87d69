"""crawler.Item / Field / ItemLoader: declared items as a Scrapy project's items.py has them."""
import pytest
from itemloaders.processors import Join, TakeFirst

from crawler import Field, Item, ItemLoader, Response


class Book(Item):
    title = Field(output_processor=TakeFirst())
    tags = Field(output_processor=Join(", "))


class PricedBook(Book):
    price = Field()


def page(body: str) -> Response:
    return Response("http://127.0.0.1/b", 200, {"Content-Type": "text/html"}, body.encode())


def test_an_item_takes_its_declared_fields_and_refuses_others_by_name():
    book = Book(title="Dune")
    book["tags"] = ["sf"]
    assert dict(book) == {"title": "Dune", "tags": ["sf"]}
    with pytest.raises(KeyError, match="Book does not support field: titel"):
        book["titel"] = "typo"
    with pytest.raises(KeyError, match="Book does not support field: year"):
        Book(year=1965)


def test_fields_are_read_by_key_not_by_attribute():
    book = Book(title="Dune")
    with pytest.raises(AttributeError, match=r"use item\['title'\]"):
        book.title
    with pytest.raises(AttributeError, match=r"use item\['title'\] = 'x'"):
        book.title = "x"


def test_a_subclass_keeps_its_parents_fields_and_adds_its_own():
    assert list(PricedBook.fields) == ["title", "tags", "price"]
    assert list(Book.fields) == ["title", "tags"]
    assert PricedBook.fields["title"] is Book.fields["title"]


def test_copy_shares_values_and_deepcopy_does_not():
    book = Book(title="Dune", tags=["sf"])
    shallow, deep = book.copy(), book.deepcopy()
    book["tags"].append("classic")
    assert shallow["tags"] == ["sf", "classic"] and deep["tags"] == ["sf"]
    assert type(shallow) is Book and type(deep) is Book


def test_an_item_loader_fills_a_declared_item_with_its_fields_processors():
    response = page("<h1>Dune</h1><h1>ignored</h1><a class=t>sf</a><a class=t>classic</a>")
    loader = ItemLoader(item=Book(), response=response)
    loader.add_css("title", "h1::text")
    loader.add_css("tags", "a.t::text")
    item = loader.load_item()
    assert type(item) is Book and dict(item) == {"title": "Dune", "tags": "sf, classic"}
    assert loader.context["response"] is response


def test_an_item_loader_without_an_item_fills_a_dict():
    loader = ItemLoader(response=page("<p>a</p><p>b</p>"))
    loader.add_css("ps", "p::text")
    loader.add_value("n", 2)
    assert loader.load_item() == {"ps": ["a", "b"], "n": [2]}


def test_an_item_loader_refuses_a_field_the_item_does_not_declare():
    loader = ItemLoader(item=Book(), response=page("<p>x</p>"))
    with pytest.raises(KeyError, match="does not support field: year"):
        loader.add_css("year", "p::text")
