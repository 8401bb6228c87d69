"""The master's side of a crawl on Redis: claiming its keys, the frontier, and the items.

Workers put the items of a batch of pages into the shard's stream (one entry, a field a
page) in the same script that settles the pages. The master reads them with a consumer
group and acknowledges an entry only after every feed holds it: the feeds' progress (path,
bytes, items) and the last entry written per shard are recorded together in the crawl's
meta hash, so a master killed at any moment cuts each feed back to that length and writes
again exactly the entries after it.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Callable

from . import redis_keys
from .redis import RedisFrontier
from .redis_codec import MEDIA_FILES, media_outcome, unpack
from .throttle import Throttle
from ..errors import UsageError

log = logging.getLogger(__name__)
GROUP = "master"
CONSUMER = "master"  # one master at a time: a new one takes over its predecessor's entries
_READ_COUNT = 1000
_START_URLS_BATCH = 1000


def frontier_from_settings(client: Any, crawl: str, shards: int,
                           s: dict[str, Any]) -> RedisFrontier:
    """The Redis frontier for a crawl's merged settings (master and workers alike)."""
    return RedisFrontier(client, crawl, shards=shards,
                         per_host=s["CONCURRENT_REQUESTS_PER_DOMAIN"],
                         throttle=Throttle.from_settings(s), host_page_limit=s["HOST_PAGE_LIMIT"],
                         lease_timeout=s["LEASE_TIMEOUT"], retry_times=s["RETRY_TIMES"],
                         robots_agent=s["USER_AGENT"] if s["ROBOTSTXT_OBEY"] else None,
                         robots_max_delay=s["ROBOTSTXT_MAX_CRAWL_DELAY"],
                         slots=s["DOWNLOAD_SLOTS"])


class RedisCrawl:
    """A crawl's keys in one Redis, claimed by this master."""

    def __init__(self, client: Any, url: str, crawl: str, shards: int, resuming: bool) -> None:
        self.client, self.url, self.crawl, self.shards = client, url, crawl, shards
        self.resuming = resuming
        self.meta = redis_keys.meta_key(crawl)
        self.frontier: RedisFrontier | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ids: list[tuple[int, int, bytes]] = []  # (seq, shard, entry id) handed over
        self._seq = 0
        self._media: Any = None
        self._handed: list = ["0-0"] * shards

    @classmethod
    def open(cls, url: str, crawl: str, shards: int, identity: dict[str, Any]) -> "RedisCrawl":
        """Connect, check and claim; UsageError (exit 2, nothing written) on any problem."""
        redis_keys.check_name(crawl)
        if shards < 1:
            raise UsageError("REDIS_SHARDS takes 1 or more")
        redis_keys.ping(redis_keys.client_for(url, retry_for=0), url)  # fails fast
        client = redis_keys.client_for(url)
        ident = redis_keys.identity(identity["spider"], identity["output"],
                                    identity["spider_args"])
        resuming = redis_keys.open_crawl(client, url, crawl, ident, shards)
        secret = redis_keys.password(url)
        if secret and redis_keys.PASSWORD_ENV not in os.environ:
            # local workers inherit it; the hello reply never carries it
            os.environ[redis_keys.PASSWORD_ENV] = secret
        return cls(client, url, crawl, shards, resuming)

    # -- what the master asks ----------------------------------------------------------
    def make_frontier(self, settings: dict[str, Any]) -> RedisFrontier:
        self.frontier = frontier_from_settings(self.client, self.crawl, self.shards, settings)
        self.frontier.set_state("running")  # an interrupted run left "over:interrupted"
        return self.frontier

    def hello(self) -> dict[str, Any]:
        """What workers are told (in the master's hello reply): never the password."""
        return {"kind": "redis", "url": redis_keys.redacted(self.url), "crawl": self.crawl,
                "shards": self.shards}

    def get(self, name: str) -> str | None:
        value = self.client.hget(self.meta, name)
        return value.decode() if value is not None else None

    def feed_progress(self, key: str) -> tuple[str, int, int] | None:
        """(path, bytes known good, items in them) of one feed; None before it started."""
        value = self.get(f"feed {key}")
        return tuple(json.loads(value)) if value is not None else None

    def tell(self, state: str) -> None:
        """What workers hear: running, closing, over:<closed_by>."""
        if self.frontier is not None:
            self.frontier.set_state(state)

    def put_finished(self) -> None:
        self.client.hset(self.meta, "finished", "1")

    # -- start URLs pushed from outside ------------------------------------------------
    @property
    def start_urls_key(self) -> str:
        """The list a running crawl reads start URLs from, named as scrapy-redis names it."""
        return f"{self.crawl}:start_urls"

    def feed_start_urls(self, add: Callable[[list[str]], Any]) -> int:
        """Admit (through `add`) the first URLs of the list start_urls_key, then remove those
        very entries (LREM, not by position: what is pushed meanwhile, at either end, stays);
        a master killed in between admits them again, which dedup makes harmless. How many
        were taken."""
        key = self.start_urls_key
        raw = self.client.lrange(key, 0, _START_URLS_BATCH - 1)
        if raw:
            add([url.decode("utf-8", "replace") for url in raw])
            pipe = self.client.pipeline(transaction=False)
            for url in raw:
                pipe.lrem(key, 1, url)  # its first copy: the one read
            pipe.execute()
        return len(raw)

    # -- items -------------------------------------------------------------------------
    def start_items(self, put_many: Callable[[list[tuple[int, dict]]], None],
                    media: Any = None) -> None:
        """Read the item streams on a thread of their own, handing items to the sink, and
        the downloads settled to `media` (crawler.pipelines.downloads.MediaDownloads)."""
        self._media = media
        for prefix in self.frontier.prefixes:
            try:
                self.client.xgroup_create(prefix + "items", GROUP, id="0", mkstream=True)
            except Exception as exc:  # BUSYGROUP: made by an earlier run
                if "BUSYGROUP" not in str(exc):
                    raise
        # Reads are not retried behind our back: a read whose reply was lost has delivered
        # its entries to our pending list, so after any error the pending list is read again.
        self._reads = redis_keys.client_for(self.url, retry_for=0)
        self._reader = threading.Thread(target=self._read, args=(put_many,), name="items",
                                        daemon=True)
        self._reader.start()

    def caught_up(self) -> bool:
        """Every entry the streams hold was handed over (the sink may still hold items)."""
        pipe = self.client.pipeline(transaction=False)
        for prefix in self.frontier.prefixes:
            pipe.xinfo_stream(prefix + "items")
        last = [info["last-generated-id"] for info in pipe.execute()]
        with self._lock:
            handed = list(self._handed)
        return all(_id(got) <= _id(done) for got, done in zip(last, handed))

    def stop_items(self) -> None:
        """Read what is left (every page settled has its items in a stream), then stop."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(30)

    def _read(self, put_many: Callable[[list[tuple[int, dict]]], None]) -> None:
        written = [self.get(f"written {k}") or "0-0" for k in range(self.shards)]
        handed = self._handed = list(written)  # the last entry handed to the sink, per shard
        streams = {p + "items": "0" for p in self.frontier.prefixes}  # own pending first
        shard_of = {p + "items": k for k, p in enumerate(self.frontier.prefixes)}
        while True:
            stopping = self._stop.is_set()
            try:
                replies = self._read_streams(streams, stopping)
            except Exception as exc:
                log.warning("reading items from Redis: %r; reading the pending ones again", exc)
                streams = {name: handed[shard_of[name]] for name in streams}
                self._stop.wait(0.5)
                continue
            got = 0
            for stream, entries in replies or ():
                name = stream.decode()
                if streams[name] != ">":  # the pending history, read on from the last one
                    streams[name] = entries[-1][0] if entries else ">"
                got += self._hand_over(put_many, shard_of[name], entries, written, handed)
            if stopping and not got and all(v == ">" for v in streams.values()):
                return

    def _read_streams(self, streams: dict[str, str], stopping: bool) -> list:
        """One read of every shard's stream: one call on a single Redis, one per stream on
        a Cluster (the streams are in different slots), then a short wait if all were
        empty."""
        if self.shards == 1:
            return self._reads.xreadgroup(GROUP, CONSUMER, streams, count=_READ_COUNT,
                                          block=None if stopping else 100)
        replies = []
        for name, last in streams.items():
            replies += self._reads.xreadgroup(GROUP, CONSUMER, {name: last},
                                              count=_READ_COUNT) or []
        if not stopping and not any(entries for _, entries in replies):
            self._stop.wait(0.05)
        return replies

    def _hand_over(self, put_many: Callable, shard: int, entries: list,
                   written: list[str], handed: list) -> int:
        batch, skip = [], []
        for entry_id, fields in entries:
            if _id(entry_id) <= _id(written[shard]):
                skip.append(entry_id)  # in the feeds already: written before a crash
                continue
            if _id(entry_id) <= _id(handed[shard]):
                continue  # handed over already, read again after an error
            settled = fields.pop(b"media", None)
            items = [item for page in fields.values() for item in unpack(page)]
            if self._media is not None:  # files stored before anyone hears of them
                items = self._media_settled(items, settled)
            with self._lock:
                for item in items:  # a field a page of the settled batch
                    self._seq += 1
                    batch.append((self._seq, item))
                self._ids.append((self._seq, shard, entry_id))
                handed[shard] = entry_id
        if skip:
            self.client.xack(self.frontier.prefixes[shard] + "items", GROUP, *skip)
        if batch:
            put_many(batch)
        return len(entries)

    def _media_settled(self, items: list[dict], settled: bytes | None) -> list[dict]:
        """Store the files that came with downloads (MEDIA_WRITTEN_BY=master), then tell
        the media pipelines how each download settled; the page items are left."""
        files = [item[MEDIA_FILES] for item in items if MEDIA_FILES in item]
        outcomes = {}
        for line in (settled or b"").split(b"\n") if settled else ():
            fp, _, value = line.partition(b"\t")
            outcomes[bytes.fromhex(fp.decode())] = media_outcome(value)
        for result in files:
            self._media.store([result])
            if result.get("outcome") == "retry":  # the store failed: the download did too
                self.frontier.media_failed(result, "store_error")
                outcomes[result["fp"]] = {"reason": "store_error"}
        if outcomes:
            self._media.outcomes(list(outcomes.items()))
        return [item for item in items if MEDIA_FILES not in item]

    def mark_written(self, seq: int, progress: dict[str, tuple[str, int, int]]) -> None:
        """Every feed holds every item up to seq (the sink calls this after a flush): record
        where each feed stands and the last entry per shard, then acknowledge them."""
        with self._lock:
            done = [e for e in self._ids if e[0] <= seq]
            self._ids = [e for e in self._ids if e[0] > seq]
        last: dict[int, bytes] = {}
        for _, shard, entry_id in done:
            last[shard] = entry_id
        record = {f"feed {key}": json.dumps(list(value)) for key, value in progress.items()}
        record.update({f"written {k}": v.decode() for k, v in last.items()})
        # Recorded before acknowledged, not in one transaction (the keys are in different
        # Cluster slots): an entry both recorded and still pending is skipped on resume.
        pipe = self.client.pipeline(transaction=False)
        if record:
            pipe.hset(self.meta, mapping=record)
        for shard in last:
            ids = [e[2] for e in done if e[1] == shard]
            pipe.xack(self.frontier.prefixes[shard] + "items", GROUP, *ids)
            pipe.xdel(self.frontier.prefixes[shard] + "items", *ids)  # the stream stays small
        pipe.execute()


def _id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)
