"""Requests that submit data: FormRequest (form fields, or a page's <form>) and JsonRequest.

Names and meanings as Scrapy's; lxml's form handling reads the form's fields.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..errors import CrawlerError
from .request import Request
from .response import Response

FormData = Mapping[str, Any] | Iterable[tuple[str, Any]]
_FORM_TYPE = "application/x-www-form-urlencoded"
_JSON_HEADERS = {"Content-Type": "application/json",
                 "Accept": "application/json, text/javascript, */*; q=0.01"}
_SUBMIT = ("descendant::input[@type='submit' or @type='image']"
           " | descendant::button[not(@type) or @type='submit']")


class FormRequest(Request):
    """A Request whose `formdata` (a dict or (name, value) pairs) is sent urlencoded: as the
    body of a POST (the default method), or as the query of a GET."""

    def __init__(self, url: str, formdata: FormData | None = None, method: str | None = None,
                 **kwargs: Any) -> None:
        method = (method or ("POST" if formdata is not None else "GET")).upper()
        if formdata is not None:
            encoded = urlencode(list(_pairs(formdata)), doseq=True)
            if method == "GET":
                url = _with_query(url, encoded)
            else:
                kwargs["body"] = encoded
                headers = dict(kwargs.get("headers") or {})
                headers.setdefault("Content-Type", _FORM_TYPE)
                kwargs["headers"] = headers
        super().__init__(url, method=method, **kwargs)

    @classmethod
    def from_response(cls, response: Response, formname: str | None = None,
                      formid: str | None = None, formnumber: int = 0,
                      formxpath: str | None = None, formcss: str | None = None,
                      formdata: FormData | None = None,
                      clickdata: Mapping[str, str] | None = None, dont_click: bool = False,
                      **kwargs: Any) -> "FormRequest":
        """A request submitting one of the page's forms: its fields as the page has them
        (and the first submit button's, unless dont_click), overridden by `formdata` (a None
        value removes a field). CrawlerError when no such form is on the page."""
        form = _find_form(response, formname, formid, formnumber, formxpath, formcss)
        fields = list(form.form_values())
        if not dont_click:
            fields += _clicked(form, clickdata)
        if formdata is not None:
            override = dict(_pairs(formdata))
            fields = [(k, v) for k, v in fields if k not in override]
            fields += [(k, v) for k, v in override.items() if v is not None]
        action = form.get("action")
        url = response.urljoin(action.strip()) if action and action.strip() else response.url
        method = kwargs.pop("method", None) or (form.get("method") or "GET").upper()
        return cls(url, formdata=fields, method=method, **kwargs)


class JsonRequest(Request):
    """A Request whose `data` is sent as a JSON body (POST unless `method` says otherwise;
    GET without data), with JSON's Content-Type and Accept unless `headers` set them."""

    def __init__(self, url: str, data: Any = None, dumps_kwargs: dict[str, Any] | None = None,
                 method: str | None = None, **kwargs: Any) -> None:
        if data is not None and not kwargs.get("body"):
            kwargs["body"] = json.dumps(data, **(dumps_kwargs or {}))
        given = dict(kwargs.get("headers") or {})
        names = {name.lower() for name in given}
        kwargs["headers"] = {**{k: v for k, v in _JSON_HEADERS.items() if k.lower() not in names},
                             **given}
        method = method or ("POST" if data is not None or kwargs.get("body") else "GET")
        super().__init__(url, method=method, **kwargs)


def _pairs(data: FormData) -> Iterable[tuple[str, Any]]:
    return data.items() if isinstance(data, Mapping) else data


def _with_query(url: str, query: str) -> str:
    parts = urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=joined))


def _find_form(response: Response, name: str | None, form_id: str | None, number: int,
               xpath: str | None, css: str | None) -> Any:
    if not response.is_html:
        raise CrawlerError(f"{response.url} is not HTML: it has no forms")
    root = response.selector.root
    if xpath or css:
        found = response.xpath(xpath) if xpath else response.css(css)
        for element in (sel.root for sel in found if not isinstance(sel.root, str)):
            form = next(iter(element.iterancestors("form")), None) \
                if element.tag != "form" else element
            if form is not None:
                return form
        raise CrawlerError(f"no <form> at {xpath or css!r} on {response.url}")
    for attr, value in (("name", name), ("id", form_id)):
        if value is not None:
            forms = root.xpath(f"//form[@{attr}=$value]", value=value)
            if forms:
                return forms[0]
            raise CrawlerError(f"no <form {attr}={value!r}> on {response.url}")
    forms = root.xpath("//form")
    if not 0 <= number < len(forms):
        raise CrawlerError(f"no form number {number} on {response.url} ({len(forms)} forms)")
    return forms[number]


def _clicked(form: Any, clickdata: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """The (name, value) a click on the form's first submit button (or the one whose
    attributes match clickdata) sends; none for a button without a name."""
    for button in form.xpath(_SUBMIT):
        if clickdata and any(button.get(k) != str(v) for k, v in clickdata.items()):
            continue
        name = button.get("name")
        return [(name, button.get("value") or "")] if name else []
    if clickdata:
        raise CrawlerError(f"no submit button matching {dict(clickdata)!r} in the form")
    return []
