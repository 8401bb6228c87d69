"""crawler.config: layering, coercion of -s strings, and clear UsageErrors."""
import logging

import pytest

from crawler import UsageError, config


def write_settings(tmp_path, text):
    path = tmp_path / "settings.py"
    path.write_text(text)
    return str(path)


def test_defaults_has_every_framework_setting():
    d = config.defaults()
    assert d["CONCURRENT_REQUESTS"] == 128
    assert d["AUTOSCALE_ENABLED"] is True and d["AUTOSCALE_START"] == 16
    assert d["RETRY_HTTP_CODES"] == [500, 502, 503, 504, 522, 524, 408, 429]
    assert d["JOBDIR"] is None
    assert all(name.isupper() for name in d)


def test_load_module_settings_reads_upper_case_names_only(tmp_path):
    path = write_settings(tmp_path, "DOWNLOAD_DELAY = 1.5\nlower = 3\nMixed_Case = 1\nMY_OWN = 'x'\n")
    loaded = config.load_module_settings(path)
    assert loaded == {"DOWNLOAD_DELAY": 1.5, "MY_OWN": "x"}


def test_load_module_settings_missing_file_is_empty(tmp_path):
    assert config.load_module_settings(str(tmp_path / "nope.py")) == {}


def test_load_module_settings_broken_file_is_usage_error(tmp_path):
    path = write_settings(tmp_path, "DOWNLOAD_DELAY = (\n")
    with pytest.raises(UsageError, match="cannot load project settings"):
        config.load_module_settings(path)


def test_layers_each_override_the_previous(tmp_path):
    path = write_settings(tmp_path, "DOWNLOAD_DELAY = 1.0\nRETRY_TIMES = 5\nDEPTH_LIMIT = 3\n")
    file_layer = config.load_module_settings(path)
    custom = {"RETRY_TIMES": 7, "DEPTH_LIMIT": 4}
    overrides = config.parse_overrides(["DEPTH_LIMIT=9"])
    s = config.merge(file_layer, custom, strict=[overrides])
    assert s["DOWNLOAD_DELAY"] == 1.0      # from settings.py
    assert s["RETRY_TIMES"] == 7           # custom_settings beats settings.py
    assert s["DEPTH_LIMIT"] == 9           # -s beats everything
    assert s["CONCURRENT_REQUESTS"] == 128  # default untouched


def test_unknown_name_in_non_strict_layer_is_kept_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="crawler.config"):
        s = config.merge({"MY_PROJECT_THING": [1, 2]})
    assert s["MY_PROJECT_THING"] == [1, 2]
    assert "MY_PROJECT_THING" in caplog.text


def test_parse_overrides_keeps_strings_and_splits_on_first_equals():
    assert config.parse_overrides(["A=1", " B =x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}


@pytest.mark.parametrize("pair", ["NOEQUALS", "=5", "  =5"])
def test_parse_overrides_rejects_pairs_without_name_or_equals(pair):
    with pytest.raises(UsageError, match="expected NAME=VALUE") as info:
        config.parse_overrides([pair])
    assert repr(pair) in str(info.value)


@pytest.mark.parametrize("name, text, expected", [
    ("ROBOTSTXT_OBEY", "false", False),
    ("ROBOTSTXT_OBEY", "No", False),
    ("ROBOTSTXT_OBEY", "0", False),
    ("ROBOTSTXT_OBEY", "yes", True),
    ("ROBOTSTXT_OBEY", "ON", True),
    ("CONCURRENT_REQUESTS", "4", 4),
    ("HTTPERROR_ALLOWED_CODES", "404, 410", [404, 410]),
    ("CONCURRENT_REQUESTS", " 32 ", 32),
    ("CONCURRENT_REQUESTS", "4.0", 4),
    ("DOWNLOAD_DELAY", "0.25", 0.25),
    ("DOWNLOAD_DELAY", "2", 2.0),
    ("RETRY_HTTP_CODES", "500,503", [500, 503]),
    ("RETRY_HTTP_CODES", " 500 , 503 ,", [500, 503]),
    ("RETRY_HTTP_CODES", "[429, 503]", [429, 503]),
    ("SPIDER_MODULES", "myspiders, more.spiders", ["myspiders", "more.spiders"]),
    ("ITEM_PIPELINES", '{"pkg.Pipe": 300}', {"pkg.Pipe": 300}),
    ("DEFAULT_REQUEST_HEADERS", '{"Accept": "*/*"}', {"Accept": "*/*"}),
    ("JOBDIR", "state", "state"),
    ("JOBDIR", "", None),
    ("USER_AGENT", "mybot/1.0", "mybot/1.0"),
    ("LOG_LEVEL", "DEBUG", "DEBUG"),
])
def test_override_strings_are_coerced(name, text, expected):
    value = config.merge(strict=[{name: text}])[name]
    assert value == expected
    assert type(value) is type(expected)


def test_settings_file_values_are_checked_too(tmp_path):
    path = write_settings(tmp_path, "CONCURRENT_REQUESTS = '8'\nROBOTSTXT_OBEY = 'false'\n")
    s = config.merge(config.load_module_settings(path))
    assert s["CONCURRENT_REQUESTS"] == 8
    assert s["ROBOTSTXT_OBEY"] is False


@pytest.mark.parametrize("name, text, words", [
    ("DOWNLOAD_DELAY", "abc", ["DOWNLOAD_DELAY", "'abc'"]),
    ("CONCURRENT_REQUESTS", "2.5", ["CONCURRENT_REQUESTS", "whole number"]),
    ("ROBOTSTXT_OBEY", "maybe", ["ROBOTSTXT_OBEY", "boolean"]),
    ("RETRY_HTTP_CODES", "500,abc", ["RETRY_HTTP_CODES"]),
    ("RETRY_HTTP_CODES", "500,99", ["RETRY_HTTP_CODES", "99"]),
    ("ITEM_PIPELINES", "not json", ["ITEM_PIPELINES"]),
    ("ITEM_PIPELINES", "[1, 2]", ["ITEM_PIPELINES", "dict"]),
    ("RETRY_TIMES", "-1", ["RETRY_TIMES", "negative"]),
    ("DOWNLOAD_DELAY", "-0.5", ["DOWNLOAD_DELAY", "negative"]),
    ("DOWNLOAD_MAXSIZE", "-1", ["DOWNLOAD_MAXSIZE", "negative"]),
    ("CONCURRENT_REQUESTS", "0", ["CONCURRENT_REQUESTS", "at least 1"]),
    ("CONCURRENT_REQUESTS_PER_DOMAIN", "0", ["CONCURRENT_REQUESTS_PER_DOMAIN", "at least 1"]),
    ("BATCH_SIZE", "0", ["BATCH_SIZE", "at least 1"]),
    ("CALL_TIMEOUT", "0", ["CALL_TIMEOUT", "more than 0"]),
    ("LEASE_TIMEOUT", "0", ["LEASE_TIMEOUT", "more than 0"]),
    ("DOWNLOAD_TIMEOUT", "0.0", ["DOWNLOAD_TIMEOUT", "more than 0"]),
    ("HTTPERROR_ALLOWED_CODES", "404,abc", ["HTTPERROR_ALLOWED_CODES"]),
    ("HTTPERROR_ALLOWED_CODES", "[404, 1000]", ["HTTPERROR_ALLOWED_CODES", "1000"]),
    ("LOG_LEVEL", "LOUD", ["LOG_LEVEL", "'LOUD'", "DEBUG"]),
])
def test_bad_values_are_usage_errors_naming_the_setting(name, text, words):
    with pytest.raises(UsageError) as info:
        config.merge(strict=[{name: text}])
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name, text", [
    ("RETRY_TIMES", "inf"),
    ("CONCURRENT_REQUESTS", "1e400"),
    ("DOWNLOAD_DELAY", "nan"),
])
def test_non_finite_numbers_are_usage_errors(name, text):
    with pytest.raises(UsageError, match=name):
        config.merge(strict=[{name: text}])


def test_depth_priority_may_be_negative():
    assert config.merge(strict=[{"DEPTH_PRIORITY": "-1"}])["DEPTH_PRIORITY"] == -1


def test_wrong_python_type_in_settings_file_is_usage_error(tmp_path):
    path = write_settings(tmp_path, "USER_AGENT = 42\n")
    with pytest.raises(UsageError, match="USER_AGENT"):
        config.merge(config.load_module_settings(path))


def test_boolean_for_a_number_is_usage_error():
    with pytest.raises(UsageError, match="RETRY_TIMES"):
        config.merge({"RETRY_TIMES": True})


def test_unknown_override_suggests_close_name():
    with pytest.raises(UsageError) as info:
        config.merge(strict=[config.parse_overrides(["DOWNLOAD_DELAI=1"])])
    assert str(info.value) == "unknown setting DOWNLOAD_DELAI (did you mean DOWNLOAD_DELAY?)"


def test_unknown_override_without_close_name():
    with pytest.raises(UsageError) as info:
        config.merge(strict=[{"XYZZY": "1"}])
    assert str(info.value) == "unknown setting XYZZY"


def test_download_slots_are_checked_and_keyed_like_hosts():
    slots = config.merge(strict=[{"DOWNLOAD_SLOTS": '{"Straße.de": {"concurrency": "2", '
                                                     '"delay": 1}}'}])["DOWNLOAD_SLOTS"]
    assert slots == {"xn--strae-oqa.de": {"concurrency": 2, "delay": 1.0}}


@pytest.mark.parametrize("value, words", [
    ('{"a.test": 3}', ["DOWNLOAD_SLOTS['a.test']", "dict"]),
    ('{"a.test": {"speed": 3}}', ["unknown keys", "speed"]),
    ('{"a.test": {"concurrency": 0}}', ["at least 1"]),
    ('{"a.test": {"delay": "soon"}}', ["delay", "soon"]),
])
def test_bad_download_slots_are_usage_errors(value, words):
    with pytest.raises(UsageError) as info:
        config.merge(strict=[{"DOWNLOAD_SLOTS": value}])
    for word in words:
        assert word in str(info.value)
