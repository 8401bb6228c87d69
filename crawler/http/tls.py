"""Which server certificates the fetcher trusts: TLS_VERIFY, TLS_CA_BUNDLE, the environment.

The answer is what requests calls `verify`: False (check nothing), True (certifi's bundle),
or the path of a PEM file or of a folder of certificates (hashed names, as OpenSSL reads
it). When TLS_CA_BUNDLE is unset, REQUESTS_CA_BUNDLE and then SSL_CERT_FILE name the bundle.
The environment is read where the fetcher runs, so on each worker host: a path on the
master's host need not exist on a worker's.
"""
from __future__ import annotations

import os
import ssl
from typing import Mapping

from ..errors import UsageError

ENV_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # tried in this order


def verify_value(verify: bool, bundle: str | None, env: Mapping[str, str]) -> bool | str:
    """requests' `verify` for these settings and environment; UsageError when the bundle
    named cannot be used (so a worker fails at configure time, not on every page)."""
    if not verify:
        return False
    source = "setting TLS_CA_BUNDLE"
    if not bundle:
        source, bundle = next(((f"${name}", env[name]) for name in ENV_VARS if env.get(name)),
                              (source, None))
    if bundle is None:
        return True
    problem = bundle_problem(bundle)
    if problem:
        raise UsageError(f"{source}={bundle!r}: {problem}")
    return bundle


def bundle_problem(path: str) -> str | None:
    """Why `path` cannot serve as a CA bundle (missing, unreadable, no certificate in it),
    or None when it can."""
    try:
        if os.path.isdir(path):
            os.listdir(path)  # certificates in a folder are read when needed
        else:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        return f"not a PEM file of CA certificates ({exc.reason or exc})"
    except FileNotFoundError:
        return "no such file or folder"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None
