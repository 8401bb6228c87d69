"""Framework defaults. Layers on top: settings.py, spider.custom_settings, -s NAME=VALUE.

Names and meanings follow Scrapy where Scrapy has the setting.
"""

# Sent with every request unless the request sets its own User-Agent. Set your own, with a
# contact for site owners: "mybot/1.0 (+https://example.org/bot; bot@example.org)".
USER_AGENT = "crawler/0.1 (no contact set: see USER_AGENT in crawler's README)"
# Headers added to every request (the request's own headers win).
DEFAULT_REQUEST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en",
}
# Fetch robots.txt once per host (on the master's behalf) and obey it.
ROBOTSTXT_OBEY = True
# Longest Crawl-delay obeyed: a host asking for more is crawled at one request per this
# many seconds (and a warning says so), so a hostile robots.txt cannot park a host for ever.
ROBOTSTXT_MAX_CRAWL_DELAY = 30.0
# Most requests in flight in each worker process (fetcher threads): the autoscaler's cap,
# or the fixed number when AUTOSCALE_ENABLED is False.
CONCURRENT_REQUESTS = 128
# Requests in flight to one host across the whole cluster.
CONCURRENT_REQUESTS_PER_DOMAIN = 8
# Seconds between two request starts to one host, cluster-wide.
DOWNLOAD_DELAY = 0.0
# Per-host overrides, as in Scrapy: {"host": {"concurrency": 1, "delay": 2.0,
# "randomize_delay": False}}, enforced by the master for the whole cluster.
DOWNLOAD_SLOTS = {}
# Multiply DOWNLOAD_DELAY by a random factor in [0.5, 1.5], as Scrapy does.
RANDOMIZE_DOWNLOAD_DELAY = True
# Adapt each host's delay to its latency (computed on the master from workers' reports).
AUTOTHROTTLE_ENABLED = False
# Requests AutoThrottle aims to have in flight to each host.
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
# A new host's delay under AutoThrottle.
AUTOTHROTTLE_START_DELAY = 5.0
# Largest delay AutoThrottle sets.
AUTOTHROTTLE_MAX_DELAY = 60.0
# Longest pause honoured from a Retry-After header on 429/503 responses.
RETRY_AFTER_MAX = 60.0
# Most pages admitted per host (0 = no limit); more are dropped and counted.
HOST_PAGE_LIMIT = 0
# Drop links whose path repeats one segment more than this often (a crawler trap).
TRAP_SEGMENT_REPEAT = 3
# Total seconds one request may take: name lookup, connect, headers and body together.
DOWNLOAD_TIMEOUT = 30.0
# Largest decoded body in bytes; larger responses fail with too_large.
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
# Log a warning for bodies larger than this many bytes.
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
# Largest sitemap in bytes, as downloaded and uncompressed (the protocol's 50 MB): too_large.
SITEMAP_MAXSIZE = 50 * 1024 * 1024
# Most URLs read from one sitemap (the protocol's 50,000); the rest are ignored, with a warning.
SITEMAP_MAX_URLS = 50_000
# The generic spider also reads the sitemaps listed in each seed host's robots.txt.
SITEMAP_FROM_ROBOTS = False
# Retries after the first attempt for connection errors, timeouts, RETRY_HTTP_CODES.
RETRY_TIMES = 2
# HTTP statuses that are retried (then failed(http_<code>)).
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
# Redirect hops followed from one original request (HTTP redirects and meta refresh).
REDIRECT_MAX_TIMES = 10
# Non-2xx statuses passed to callbacks anyway (else they end failed(http_<code>)); a spider's
# handle_httpstatus_list and a request's meta handle_httpstatus_list/_all take precedence.
HTTPERROR_ALLOWED_CODES = []
# Pass every response to the callbacks, whatever its status.
HTTPERROR_ALLOW_ALL = False
# Follow <meta http-equiv="refresh" content="N; url=..."> like a redirect.
METAREFRESH_ENABLED = True
# Refreshes of this many seconds or more are not followed (the page is parsed instead).
METAREFRESH_MAXDELAY = 100.0
# Deepest link depth followed; 0 means no limit.
DEPTH_LIMIT = 0
# Added to a request's priority per depth level: > 0 breadth-first, < 0 depth-first.
DEPTH_PRIORITY = 0
# URLs longer than this are dropped when extracted.
URLLENGTH_LIMIT = 2083
# Query parameters ignored when deduplicating (tracking and session ids).
# A trailing * matches any name with that prefix.
FINGERPRINT_IGNORE_PARAMS = [
    "utm_*", "jsessionid", "phpsessid", "sid", "sessionid", "gclid", "fbclid",
]
# Stop after this many pages done (0 = no limit).
CLOSESPIDER_PAGECOUNT = 0
# Stop after this many items written (0 = no limit).
CLOSESPIDER_ITEMCOUNT = 0
# Stop after this many pages failed by a callback raising (spider_error; 0 = no limit).
CLOSESPIDER_ERRORCOUNT = 0
# Stop after this many seconds (0 = no limit).
CLOSESPIDER_TIMEOUT = 0.0
# Item pipelines: {"module.Class": order}; lower order runs first, on the master.
ITEM_PIPELINES = {}
# Downloader middlewares: {"module.Class": order} (None disables), run on the workers.
DOWNLOADER_MIDDLEWARES = {}
# HTTP Basic credentials (or the spider's http_user/http_pass) and the one domain they go to
# (with its subdomains; None: every host). Credentials without a domain are refused.
HTTPAUTH_USER = ""
HTTPAUTH_PASS = ""
HTTPAUTH_DOMAIN = ""
# Spider middlewares (process_spider_output): {"module.Class": order}, run on the workers.
SPIDER_MIDDLEWARES = {}
# Feeds: {"uri": {"format": "jsonlines"|"json"|"csv"|"xml", "fields", "encoding", "overwrite"}};
# -o/-O on the command line replace it; neither: <spider>.jsonl.
FEEDS = {}
# Fields every feed writes, in this order (a list, or {"field": "column name"}); None: all.
FEED_EXPORT_FIELDS = None
# Encoding of feed files (JSON feeds escape non-ASCII characters under a non-UTF encoding).
FEED_EXPORT_ENCODING = "utf-8"
# Folder for the journal and stats; None keeps no state between runs.
JOBDIR = None
# Refuse URLs found while crawling that resolve to loopback, private, link-local or other
# non-global addresses (failed(blocked_address)); the seeds' own hosts are always allowed.
ADDRESS_GUARD = True
# Check server certificates; False accepts any certificate (one warning per worker process).
TLS_VERIFY = True
# CA certificates to trust instead of certifi's: a PEM file or a folder (as requests takes);
# None: $REQUESTS_CA_BUNDLE, then $SSL_CERT_FILE, read on each worker host, else certifi.
TLS_CA_BUNDLE = None
# Proxy for every request, e.g. "http://proxy:3128"; a request's meta["proxy"] wins.
HTTP_PROXY = None
# Carry cookies: those a response sets go with the requests that follow from it.
COOKIES_ENABLED = True
# Logging threshold for master and workers.
LOG_LEVEL = "INFO"
# Seconds between progress lines of the master and of each worker (0 = none).
LOGSTATS_INTERVAL = 10.0
# Python packages searched for Spider subclasses.
SPIDER_MODULES = ["spiders"]

# -- own settings --
# Seconds a worker may hold a task before the master hands it to another worker.
LEASE_TIMEOUT = 60.0
# Most tasks handed out in one lease call, and most results sent in one call.
BATCH_SIZE = 64
# Seconds a worker waits for any one call to the master before it reconnects.
CALL_TIMEOUT = 10.0
# Seconds between a worker's result flushes when results are trickling in.
FLUSH_INTERVAL = 0.05
# Largest seconds between a worker's reconnect attempts (backoff cap).
RECONNECT_MAX_DELAY = 5.0
# -- the master's listener: what it allows peers before and after they prove the key --
# Seconds a new connection has for the TLS handshake and the authkey challenge.
LISTENER_CHALLENGE_TIMEOUT = 10.0
# Seconds an authenticated connection may be silent before the master closes it (more
# than a worker's longest gap between calls, LEASE_TIMEOUT / 3).
LISTENER_IDLE_TIMEOUT = 300.0
# Connections held at once from one IP address; more are closed as they come.
LISTENER_MAX_PER_ADDRESS = 128
# Seconds the finished master keeps answering "done" so workers exit on their own.
SHUTDOWN_GRACE = 5.0
# HOST:PORT of the master's status page, /stats.json and /metrics (port 0: a free one; off: none).
STATUS_BIND = "127.0.0.1:0"

# -- HTTP cache, recrawl, WARC (issue 18) --
# Keep every response on disk and answer repeated requests from there (Scrapy's HTTPCACHE_*).
HTTPCACHE_ENABLED = False
# Cache folder (a subfolder per spider): relative to each worker's current folder, so each
# worker host has its own; give a path every host mounts to share one.
HTTPCACHE_DIR = "httpcache"
# Seconds a cached response is used at most (0 = for ever).
HTTPCACHE_EXPIRATION_SECS = 0
# Statuses never stored.
HTTPCACHE_IGNORE_HTTP_CODES = []
# dummy (store all, use all) or rfc2616 (obey Cache-Control and Expires, revalidate).
HTTPCACHE_POLICY = "dummy"
# Requests not in the cache are ignored (failed(ignored)) instead of fetched.
HTTPCACHE_IGNORE_MISSING = False
# Write every fetch as WARC request/response records (revisit records on a recrawl) to this
# .warc.gz path (-o crawl.warc.gz sets it); None: no WARC.
WARC_OUTPUT = None
# Bytes after which a WARC file is closed and the next one begun (crawl-00001.warc.gz, ...).
WARC_MAX_SIZE = 1024 * 1024 * 1024

# -- a frontier bigger than memory, crawls that keep running --
# Queued URLs held in the master's memory (~270 bytes each); more wait in a spill file on
# disk and come back per host in queue order (0 = no bound).
FRONTIER_MEMORY_QUEUE = 1_000_000
# Folder for the spill file (unlinked once open: nothing is left behind); None: the JOBDIR,
# else the system's temporary folder ($TMPDIR). Put it on a disk, not a tmpfs.
FRONTIER_SPILL_DIR = None
# Fingerprints the master keeps in a plain dict (~100 bytes each, the fastest); the rest go
# to a compact table (~25 bytes each, a few us more per new URL). Both are exact.
FRONTIER_SEEN_DICT = 2_000_000
# Keep the crawl open when nothing is left to do: it waits for URLs added with
# `python -m crawler.add` until `python -m crawler.stop` (or SIGTERM, Ctrl-C).
KEEP_RUNNING = False
# -- Redis backend (--backend redis://...) --
# Shards of a crawl's frontier in Redis: each is one hash tag (one Cluster slot) holding its
# hosts' queues, leases and counters. 1 for a single Redis; on a Cluster, a few per node.
REDIS_SHARDS = 1
# -- concurrency that sizes itself (crawler.autoscale; per worker process) --
# Size each worker's pool by its CPU headroom, memory, timer lag and hosts' pushback, up to
# CONCURRENT_REQUESTS; False: always CONCURRENT_REQUESTS threads (as does worker -c N).
AUTOSCALE_ENABLED = True
# Fetcher threads a worker starts with.
AUTOSCALE_START = 16
# Seconds between two sizing decisions.
AUTOSCALE_INTERVAL = 0.25
# Share of one core (a process's Python code runs on one at a time) above which it shrinks.
AUTOSCALE_MAX_CPU = 0.9
# Mean seconds a timer fires late (threads waiting for the GIL or a CPU) above which it shrinks.
AUTOSCALE_MAX_LAG = 0.1
# Resident memory in MB above which it shrinks (0 = not checked).
AUTOSCALE_MAX_MEMORY = 1024
# Share of results that were 429/503 answers above which it shrinks.
AUTOSCALE_MAX_PUSHBACK = 0.1
# Share of all the machine's cores busy (every process's CPU) above which a growth is only a
# trial, kept if it raised the results per second (0 = not checked): a worker's own headroom
# says nothing of its neighbours on the machine.
AUTOSCALE_MAX_MACHINE_CPU = 0.95

# -- media pipelines: crawler.pipelines.FilesPipeline and ImagesPipeline (as Scrapy's) --
# Where FilesPipeline stores files: a folder, or an fsspec URL (s3://bucket/path, ...).
FILES_STORE = None
# Where ImagesPipeline stores images: a folder, or an fsspec URL.
IMAGES_STORE = None
# Days a stored file stays fresh: a fresher one is not downloaded again ("uptodate").
FILES_EXPIRES = 90
# Days a stored image stays fresh.
IMAGES_EXPIRES = 90
# The item field FilesPipeline reads URLs from.
FILES_URLS_FIELD = "file_urls"
# The item field FilesPipeline writes its entries to ({url, path, checksum, status}).
FILES_RESULT_FIELD = "files"
# The item field ImagesPipeline reads URLs from.
IMAGES_URLS_FIELD = "image_urls"
# The item field ImagesPipeline writes its entries to.
IMAGES_RESULT_FIELD = "images"
# Thumbnails made of each image: {"name": (width, height)}, stored as thumbs/<name>/<sha1>.jpg.
IMAGES_THUMBS = {}
# Images narrower than this (pixels) are not stored: failed(image_too_small).
IMAGES_MIN_WIDTH = 0
# Images lower than this (pixels) are not stored: failed(image_too_small).
IMAGES_MIN_HEIGHT = 0
# Follow redirects of media downloads (else a 3xx fails the download, as in Scrapy).
MEDIA_ALLOW_REDIRECTS = False
# Who writes media files to the store: "master" (the bytes travel back in the workers'
# results; works with workers anywhere) or "workers" (each writes to the store itself,
# which every worker host must then reach: an fsspec URL such as s3://, or a shared mount).
MEDIA_WRITTEN_BY = "master"
# -- durable restarts, limits and trust by origin --
# Seconds a robots.txt fetched by an earlier run of a JOBDIR (kept in its journal) is used
# again on resume; older ones are fetched again.
ROBOTSTXT_MAX_AGE = 86400.0
# Most requests kept from one callback call (a page with a million links); the rest are
# dropped and counted (links_per_page). 0: no limit.
LINKS_PER_PAGE_LIMIT = 100_000
# Exempt from the address guard besides the seeds' own origins: origins
# ("http://127.0.0.1:8080") or host names (every scheme and port of that host).
ADDRESS_GUARD_TRUSTED = []
