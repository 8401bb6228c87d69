"""Where a crawl lives in Redis, and opening it safely.

Layout (version LAYOUT): `crawler:<crawl>:meta` (a hash: layout, shards, spider, output,
spider_args, finished, feeds' progress) and, per shard k, keys under the prefix
`crawler:<crawl>:{<crawl>.<k>}:` (one hash tag: one Cluster slot per shard):
stats (hash of counters, with queued), seen (set of fingerprints), hosts (set), h:<host>
(hash: inflight, limit, next, delay, cd, rp, ...), q:<host>:<level> (list: a host's queued
tasks of one priority, in order; level "-inf" holds its robots.txt tasks), qp:<host> (sorted
set: the levels holding tasks, "-inf" first, then the highest priority), robots:<host>
(hash: origin -> rules), ready (sorted set: hosts by next allowed time), leases (hash),
expiry (sorted set), delayed (sorted set: retries by due time), qlen and hfail (sorted sets
for the status page), failures (list), ex:<reason> (last 3 URLs), workers (hash: id -> last
seen), lease_seq, state (running, closing, over:<why>), close (shard 0 only: the reason of
a spider's CloseSpider, for the master), items (stream, consumer group
"master"), media (hash: a download's hex fingerprint -> its outcome, see common.lua).
Layout 1 kept a host's queue in one sorted set, q:<host>: a crawl of it is
refused (finish it with the crawler that made it).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import UsageError

LAYOUT = "2"  # 2: a host's queue as lists per priority (1: one sorted set)
PASSWORD_ENV = "CRAWLER_REDIS_PASSWORD"
# rediss:// query options (redis-py's names): files on each host that runs a master or worker
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def meta_key(crawl: str) -> str:
    return f"crawler:{crawl}:meta"


def shard_prefix(crawl: str, shard: int) -> str:
    return f"crawler:{crawl}:{{{crawl}.{shard}}}:"


def check_name(crawl: str) -> str:
    if not _NAME.match(crawl):
        raise UsageError(f"crawl name {crawl!r}: use letters, digits, '_', '.', '-' "
                         "(at most 100)")
    return crawl


def redacted(url: str) -> str:
    """The URL without its password, as printed and as told to workers."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=user + host).geturl()


def password(url: str) -> str | None:
    """The password: from the URL, else $CRAWLER_REDIS_PASSWORD."""
    given = urlsplit(url).password
    return unquote(given) if given else os.environ.get(PASSWORD_ENV) or None


def client_for(url: str, secret: str | None = None, retry_for: float = 60.0) -> Any:
    """A redis client for redis://[user:password@]HOST:PORT/DB or rediss://... (TLS); the
    password from the URL, else $CRAWLER_REDIS_PASSWORD. A lost connection is retried for
    about `retry_for` seconds (a Redis restart), each step being safe to run twice.
    UsageError when malformed or the redis package is missing."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise UsageError(f"--backend {redacted(url)!r}: expected redis://HOST:PORT/DB or "
                         "rediss://HOST:PORT/DB")
    try:
        import redis
    except ImportError:
        raise UsageError("--backend redis:// needs the redis package: "
                         "pip install 'crawler[redis]'") from None
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise UsageError(f"--backend {redacted(url)!r}: the database must be a number")
    secret = secret or password(url)
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), int(retry_for)) if retry_for else \
        Retry(ExponentialBackoff(), 0)
    options = dict(host=parts.hostname, port=parts.port or 6379,
                   username=unquote(parts.username) if parts.username else None,
                   password=secret, ssl=parts.scheme == "rediss",
                   socket_timeout=10, socket_connect_timeout=5, **_tls_options(url))
    client = redis.Redis(db=int(db), health_check_interval=30, retry=retry,
                         retry_on_error=[redis.ConnectionError, redis.TimeoutError], **options)
    if _is_cluster(client):  # a node of a Redis Cluster: a client that follows the slots
        from redis.cluster import RedisCluster
        return RedisCluster(retry=retry, **options)
    return client


def _tls_options(url: str) -> dict[str, str]:
    """rediss://...?ssl_ca_certs=FILE (a private CA), ssl_certfile/ssl_keyfile (a client
    certificate); the server's certificate is always verified."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in options.items():
        if name not in TLS_OPTIONS or parts.scheme != "rediss":
            raise UsageError(f"--backend {redacted(url)!r}: unknown option {name!r} (rediss:// "
                             f"takes {', '.join(TLS_OPTIONS)})")
        if not os.path.isfile(value):
            raise UsageError(f"--backend {redacted(url)!r}: {name}: no file {value!r}")
    return options


def _is_cluster(client: Any) -> bool:
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except Exception:  # unreachable, or a password refused: ping() says which
        return False


def ping(client: Any, url: str) -> None:
    """UsageError naming why Redis cannot be used: unreachable, a refused password."""
    import redis
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        what = "refused the password" if password(url) else "needs a password"
        raise UsageError(f"Redis at {redacted(url)} {what} ({exc}); give it in the URL or "
                         f"${PASSWORD_ENV}") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise UsageError(f"Redis at {redacted(url)} needs a password ({exc}); give it in "
                             f"the URL or ${PASSWORD_ENV}") from None
        raise UsageError(f"Redis at {redacted(url)}: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        hint = "; a private CA: rediss://...?ssl_ca_certs=FILE" \
            if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
        raise UsageError(f"cannot reach Redis at {redacted(url)}: {exc}{hint}") from None


def open_crawl(client: Any, url: str, crawl: str, identity: dict[str, str],
               shards: int) -> bool:
    """Claim the crawl's keys, or check that they are this crawl's: True when resuming.
    UsageError (nothing written) for keys of another layout or of another crawl."""
    key = meta_key(crawl)
    meta = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
    if not meta:
        stray = next(iter(client.scan_iter(match=f"crawler:{crawl}:*", count=1000)), None)
        if stray is not None:
            raise UsageError(f"Redis at {redacted(url)} holds keys of crawl {crawl!r} without "
                             f"a layout version ({stray.decode()}): an older crawler's, or "
                             "another program's; remove them or choose another --crawl name")
        claim = dict(identity, layout=LAYOUT, shards=str(shards))
        if not client.hsetnx(key, "layout", LAYOUT):
            raise UsageError(f"another master claimed crawl {crawl!r} in Redis meanwhile")
        client.hset(key, mapping=claim)
        return False
    if meta.get("layout") != LAYOUT:
        raise UsageError(f"Redis at {redacted(url)} holds crawl {crawl!r} in key layout "
                         f"{meta.get('layout')}; this crawler uses layout {LAYOUT}: finish it "
                         "with the crawler that made it, or remove its keys (crawler:"
                         f"{crawl}:*)")
    for name, value in dict(identity, shards=str(shards)).items():
        if meta.get(name) != value:
            raise UsageError(f"Redis at {redacted(url)} holds another crawl named {crawl!r} "
                             f"({name} {meta.get(name)!r}, not {value!r}); choose another "
                             f"--crawl name, or remove its keys (crawler:{crawl}:*)")
    return True


def identity(spider: str, output: str, spider_args: dict[str, str]) -> dict[str, str]:
    return {"spider": spider, "output": output,
            "spider_args": json.dumps(spider_args or {}, sort_keys=True)}
