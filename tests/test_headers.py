"""crawler.http.headers.Headers: what users read as response.headers behaves as requests'
CaseInsensitiveDict did."""
from requests.structures import CaseInsensitiveDict

from crawler.http.headers import Headers


def test_any_case_reads_and_the_case_given_is_kept():
    h = Headers({"Content-Type": "text/html", "ETag": '"x"'})
    assert h["content-type"] == h.get("CONTENT-TYPE") == "text/html"
    assert "etag" in h and "Location" not in h and 3 not in h
    assert h.get("Location") is None and h.get("Location", "d") == "d"
    assert list(h) == ["Content-Type", "ETag"]
    assert dict(h.items()) == {"Content-Type": "text/html", "ETag": '"x"'}


def test_setting_again_replaces_in_place_by_any_case():
    h = Headers([("Accept", "a"), ("X-One", "1")])
    h.update({"accept": "b"})
    h["x-one"] = "2"
    h.update([("New", "n")], Other="o")
    assert list(h.items()) == [("accept", "b"), ("x-one", "2"), ("New", "n"), ("Other", "o")]
    del h["NEW"]
    assert len(h) == 3 and "new" not in h


def test_same_as_case_insensitive_dict():
    pairs = [("Set-Cookie", "a=1"), ("Content-Length", "3"), ("content-length", "4")]
    ours, theirs = Headers(pairs), CaseInsensitiveDict(pairs)
    assert list(ours.items()) == list(theirs.items())
    assert list(ours.lower_items()) == list(theirs.lower_items())
    assert ours == theirs and ours == {"CONTENT-LENGTH": "4", "set-cookie": "a=1"}
    assert ours.copy() == ours and ours.copy() is not ours


def test_merged_joins_repeated_fields_under_the_first_case():
    h = Headers.merged([("Vary", "a"), ("X", "1"), ("vary", "b")])
    assert list(h.items()) == [("Vary", "a, b"), ("X", "1")]
