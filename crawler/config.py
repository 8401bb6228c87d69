"""Settings layers: framework defaults <- settings.py <- custom_settings <- -s NAME=VALUE.

Named config.py so it never clashes with the project's top-level settings.py.
Values are checked once here; components receive plain values, never this module.
"""
from __future__ import annotations

import difflib
import importlib.util
import json
import logging
import math
import os
from typing import Any, Iterable, Mapping

from . import default_settings
from .errors import UsageError
from .http import cache as httpcache
from .http import guard, tls
from .urls import to_ascii_host

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Settings whose default is None but which take a string when set.
_OPTIONAL_STR = {"JOBDIR", "HTTP_PROXY", "TLS_CA_BUNDLE", "WARC_OUTPUT",
                 "FRONTIER_SPILL_DIR", "FILES_STORE", "IMAGES_STORE"}
# Settings that take a string, where None means something of its own ("every host").
_STR_OR_NONE = {"HTTPAUTH_DOMAIN"}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# Settings that are lists of HTTP status codes.
_STATUS_LISTS = ("RETRY_HTTP_CODES", "HTTPERROR_ALLOWED_CODES", "HTTPCACHE_IGNORE_HTTP_CODES")


def defaults() -> dict[str, Any]:
    """Every framework setting with its default value."""
    return {k: getattr(default_settings, k) for k in dir(default_settings) if k.isupper()}


def load_module_settings(path: str) -> dict[str, Any]:
    """UPPER_CASE names of a settings file; {} when the file does not exist."""
    if not os.path.isfile(path):
        return {}
    spec = importlib.util.spec_from_file_location("_crawler_project_settings", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UsageError(f"{path}: cannot load project settings: {exc}") from exc
    return {k: getattr(module, k) for k in dir(module) if k.isupper()}


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Turn ['NAME=VALUE', ...] into a dict; values stay strings until merge()."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-s {pair!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def merge(*layers: Mapping[str, Any], strict: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Merge layers over the defaults, coercing each value to its setting's type.

    Unknown names in `layers` are kept with a warning (a project may add its own);
    unknown names in `strict` layers (the command line) are an error.
    """
    result = defaults()
    known = set(result)
    for layer, is_strict in [(layer, False) for layer in layers] + [(s, True) for s in strict]:
        for name, value in layer.items():
            if name not in known:
                if is_strict:
                    raise UsageError(_unknown(name, known))
                log.warning("setting %s is not a framework setting; kept as given", name)
                result[name] = value
                continue
            result[name] = coerce(name, value, getattr(default_settings, name))
    _check_ranges(result)
    result["DOWNLOAD_SLOTS"] = _slots(result["DOWNLOAD_SLOTS"])
    _check_trusted(result["ADDRESS_GUARD_TRUSTED"])
    result["HTTPCACHE_POLICY"] = httpcache.policy_name(result["HTTPCACHE_POLICY"])
    # A TLS_CA_BUNDLE this host cannot use is refused before anything starts; the
    # environment's bundle is for each worker to read on its own host.
    tls.verify_value(result["TLS_VERIFY"], result["TLS_CA_BUNDLE"], env={})
    return result


def coerce(name: str, value: Any, default: Any) -> Any:
    """Convert `value` to the type of `default`, or raise UsageError naming the setting."""
    try:
        return _coerce(value, default, name)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UsageError(f"setting {name}={value!r}: {exc}") from None


def _coerce(value: Any, default: Any, name: str) -> Any:
    if name in _OPTIONAL_STR:
        return None if value in (None, "") else str(value)
    if isinstance(default, bool):
        return _to_bool(value)
    if isinstance(default, (int, float)):
        return _to_number(value, type(default))
    if isinstance(default, (list, dict)):
        container = _to_container(value, type(default))
        if name in _STATUS_LISTS:
            container = [_to_number(v, int) for v in container]
        return container
    if isinstance(default, str):
        if value is None and name in _STR_OR_NONE:
            return None
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {type(value).__name__}")
        return value
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, 1/0, yes/no)")


def _to_number(value: Any, kind: type) -> int | float:
    if isinstance(value, bool):
        raise TypeError("expected a number, got a boolean")
    if isinstance(value, str):
        value = value.strip()
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    if kind is int:
        if number != int(number):
            raise ValueError("expected a whole number")
        return int(number)
    return number


def _to_container(value: Any, kind: type) -> list | dict:
    if isinstance(value, str):
        text = value.strip()
        if kind is list and not text.startswith("["):
            value = [v.strip() for v in text.split(",") if v.strip()]
        else:
            value = json.loads(text)
    if not isinstance(value, kind):
        raise TypeError(f"expected a {kind.__name__}")
    return kind(value)


def _check_ranges(s: dict[str, Any]) -> None:
    for name in ("CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "BATCH_SIZE",
                 "SITEMAP_MAXSIZE", "SITEMAP_MAX_URLS", "WARC_MAX_SIZE",
                 "LISTENER_MAX_PER_ADDRESS"):
        if s[name] < 1:
            raise UsageError(f"setting {name}={s[name]}: must be at least 1")
    if s["AUTOSCALE_START"] < 1:
        raise UsageError(f"setting AUTOSCALE_START={s['AUTOSCALE_START']}: must be at least 1")
    for name in ("CALL_TIMEOUT", "LEASE_TIMEOUT", "DOWNLOAD_TIMEOUT",
                 "LISTENER_CHALLENGE_TIMEOUT", "LISTENER_IDLE_TIMEOUT", "AUTOSCALE_INTERVAL",
                 "AUTOSCALE_MAX_CPU"):
        if not s[name] > 0:  # zero would make every call, lease or fetch fail at once
            raise UsageError(f"setting {name}={s[name]}: must be more than 0")
    for name, value in s.items():
        if name in default_settings.__dict__ and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and value < 0 and name != "DEPTH_PRIORITY":
            raise UsageError(f"setting {name}={value}: must not be negative")
    spill = s["FRONTIER_SPILL_DIR"]
    if spill is not None and not (os.path.isdir(spill) and os.access(spill, os.W_OK | os.X_OK)):
        raise UsageError(f"setting FRONTIER_SPILL_DIR={spill!r}: not a writable folder")
    if str(s["LOG_LEVEL"]).upper() not in _LOG_LEVELS:
        raise UsageError(f"setting LOG_LEVEL={s['LOG_LEVEL']!r}: one of {sorted(_LOG_LEVELS)}")
    for name in _STATUS_LISTS:
        for code in s[name]:
            if type(code) is not int or not 100 <= code <= 599:
                raise UsageError(f"setting {name}: {code!r} is not an HTTP status")


_SLOT_KEYS = {"concurrency": int, "delay": float, "randomize_delay": bool}


def _slots(slots: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """DOWNLOAD_SLOTS checked, hosts as the frontier keys them (lowercase, IDN in punycode)."""
    out = {}
    for host, slot in slots.items():
        where = f"setting DOWNLOAD_SLOTS[{host!r}]"
        if not isinstance(slot, dict):
            raise UsageError(f"{where}: expected a dict such as {{'concurrency': 1, 'delay': 2}}")
        unknown = set(slot) - set(_SLOT_KEYS)
        if unknown:
            raise UsageError(f"{where}: unknown keys {sorted(unknown)} "
                             f"(known: {sorted(_SLOT_KEYS)})")
        checked = {k: coerce(f"DOWNLOAD_SLOTS[{host!r}][{k!r}]", v, _SLOT_KEYS[k]())
                   for k, v in slot.items()}
        if checked.get("concurrency", 1) < 1 or checked.get("delay", 0.0) < 0:
            raise UsageError(f"{where}: concurrency must be at least 1 and delay not negative")
        name = str(host).strip().lower()
        out[to_ascii_host(name) or name] = checked
    return out


def _check_trusted(entries: list[Any]) -> None:
    """ADDRESS_GUARD_TRUSTED: origins (http(s)://host[:port]) or host names."""
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip() or \
                ("://" in entry and guard.origin_key(entry) is None):
            raise UsageError(f"setting ADDRESS_GUARD_TRUSTED: {entry!r} is neither an origin "
                             "(http://host:port) nor a host name")


def _unknown(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown setting {name}{hint}"
