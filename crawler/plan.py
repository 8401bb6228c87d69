"""What a crawl will be, checked before anything starts: the command line, the settings
layers, the spider and its start requests, the feeds, the JOBDIR, the addresses and keys.
Every problem is a UsageError (exit 2)."""
from __future__ import annotations

import argparse
import os
import secrets
import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from . import components, config, feeds
from .link import channel, keyfile, manager
from .link.channel import Limits
from .errors import UsageError
from .feeds import warc
from .frontier.journal import Journal
from .link.manager import is_loopback
from .seeds import SeedFile, read_seeds
from .spider.base import Spider, load_spider_class, make_spider
from .spider.httpauth import HttpAuth
from .starts import StartRequests

STATUS_TOKEN_ENV = "CRAWLER_STATUS_TOKEN"


@dataclass
class Plan:
    """Everything checked before anything starts."""

    spider_cls: type[Spider]
    settings: dict[str, Any]
    starts: StartRequests  # the start requests, as tasks: the first batch, then a stream
    feeds: list[tuple[feeds.FeedSpec, str]]  # each feed, with its path (URI parameters filled)
    bind: tuple[str, int]
    workers: int
    key_path: str | None
    jobdir: str | None
    journal: Journal | None = None
    spider_args: dict[str, str] = field(default_factory=dict)
    temp_dirs: list[str] = field(default_factory=list)
    command: str = ""  # the command line, shown as the way to resume
    status: tuple[str, int] | None = None  # where the status page listens
    status_token: str | None = None        # required from clients when not on loopback
    stats_file: str | None = None
    new_round: bool = False  # --recrawl on a finished JOBDIR: start its next round
    warc: tuple[feeds.FeedSpec, str] | None = None  # the WARC output, with its current file
    tls: ssl.SSLContext | None = None       # the listener's TLS (--tls-cert/--tls-key)
    tls_fingerprint: str | None = None      # its certificate's SHA-256, for workers to pin
    limits: Limits = Limits()               # what the listener allows peers
    redis: Any = None  # crawler.frontier.redis_crawl.RedisCrawl with --backend redis://


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m crawler.master",
                                description="Run a crawl: the scheduler node, plus local workers.")
    p.add_argument("seeds", nargs="?", help="file of start URLs, one a line (default: the "
                   "spider's start_urls)")
    p.add_argument("--spider", help="spider name (default: the generic spider)")
    p.add_argument("-a", dest="spider_args", action="append", default=[],
                   metavar="NAME=VALUE", help="spider argument (given to its __init__)")
    p.add_argument("--workers", type=int, help="local worker processes (default: CPU count, "
                   "or 0 when --bind is not a loopback address)")
    p.add_argument("-o", "--output", dest="outputs", action="append", default=[],
                   type=lambda v: (v, False), metavar="FILE[:FORMAT]",
                   help="append items to FILE, format by extension (.jsonl/.jl, .json, .csv, "
                   ".xml) or :FORMAT; - or stdout: for standard output; may be repeated "
                   "(default: the FEEDS setting, else <spider>.jsonl)")
    p.add_argument("-O", "--overwrite-output", dest="outputs", action="append",
                   type=lambda v: (v, True), metavar="FILE[:FORMAT]",
                   help="like -o, but replace an existing file")
    p.add_argument("--overwrite", action="store_true", help="every feed replaces an existing "
                   "file (as -O)")
    p.add_argument("--bind", default="127.0.0.1:0", help="HOST:PORT workers connect to")
    p.add_argument("--authkey-file", default=os.environ.get(keyfile.ENV_VAR),
                   help="key file shared with remote workers (created 0600 if missing)")
    p.add_argument("--tls-cert", metavar="FILE", help="talk TLS to workers with this "
                   "certificate (PEM, the chain after it); needs --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    p.add_argument("--insecure", action="store_true", help="allow a --bind address other "
                   "hosts can reach without TLS (plain TCP: anyone on the path reads and "
                   "alters what master and workers say)")
    p.add_argument("--jobdir", help="folder for crawl state and stats.json")
    p.add_argument("--status", metavar="HOST:PORT", help="status page address, or off "
                   "(default: STATUS_BIND, 127.0.0.1:0)")
    p.add_argument("--recrawl", action="store_true", help="crawl a finished --jobdir again: "
                   "every known URL with a conditional request, new and changed pages "
                   "through the spider")
    p.add_argument("--stats", metavar="FILE", help="write the final stats.json here "
                   "(default: JOBDIR/stats.json)")
    p.add_argument("--keep-running", action="store_true", help="do not end when nothing is "
                   "left to do: wait for URLs from python -m crawler.add until python -m "
                   "crawler.stop (sets KEEP_RUNNING)")
    p.add_argument("--backend", metavar="URL", help="where the frontier lives: embedded (the "
                   "default: in this process) or redis://[:PASSWORD@]HOST:PORT/DB (also "
                   "rediss://; or the password in $CRAWLER_REDIS_PASSWORD)")
    p.add_argument("--crawl", metavar="NAME", help="the crawl's name in Redis (default: the "
                   "spider's name); run the same command again to resume it")
    p.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a setting")
    return p.parse_args(argv)


def prepare(args: argparse.Namespace) -> Plan:
    """Check settings, spider, seeds, output and address; UsageError on any problem."""
    project = config.load_module_settings("settings.py")
    overrides = config.parse_overrides(args.set)
    if args.keep_running:
        overrides["KEEP_RUNNING"] = "true"
    modules = config.merge(project, strict=[overrides])["SPIDER_MODULES"]
    spider_cls = load_spider_class(args.spider, modules)
    settings = config.merge(project, spider_cls.custom_settings, strict=[overrides])
    for setting in ("DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES"):  # they run on workers
        for path in settings[setting]:
            components.load_class(setting, path)
    spider_args = _spider_args(args.spider_args)
    starts = _start_requests(spider_cls, settings, spider_args,
                             read_seeds(args.seeds) if args.seeds else None)
    if not starts.first and not settings["KEEP_RUNNING"]:
        raise UsageError("no start URLs: give a seeds file or set start_urls on the spider")
    outputs = [o for o in args.outputs if not warc.is_warc(o[0])]
    warc_spec = _warc_spec([o for o in args.outputs if warc.is_warc(o[0])], settings,
                           args.overwrite)
    specs = _feed_specs(outputs, args.overwrite, settings, spider_cls.name)
    jobdir = args.jobdir or settings["JOBDIR"]
    settings["JOBDIR"] = jobdir
    journal = Journal(jobdir) if jobdir else None
    if args.recrawl and journal is None:
        raise UsageError("--recrawl needs the --jobdir of a crawl")
    identity = feeds.identity(specs + [warc_spec] * bool(warc_spec))
    backend = _backend(args, settings, spider_cls.name, identity, spider_args)
    new_round = bool(args.recrawl and journal.get("finished"))
    if new_round:  # its feeds are its own: -o/FEEDS may differ from the last round's
        journal.forget_feeds(identity)
    if journal is not None:
        journal.check_same_crawl(spider_cls.name, identity, spider_args)
    outputs = _feed_paths(specs, journal or backend, feeds.uri_params(starts.spider))
    warc_output = None
    if warc_spec is not None:
        store = journal or backend  # where its progress is recorded (Redis: in its meta)
        progress = store.feed_progress(warc_spec.key) if store is not None else None
        warc_output = (warc_spec, progress[0] if progress else warc_spec.uri)
    host, port = manager.parse_address(args.bind, port_zero=True)
    loopback = is_loopback(host)
    tls, fingerprint = _tls(args, loopback, args.bind)  # before anything binds
    manager.check_listen((host, port))
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1) * loopback
    if workers < 0:
        raise UsageError("--workers takes 0 or more")
    key_path = args.authkey_file or (os.path.join(jobdir, "authkey") if jobdir else None)
    if workers == 0 and not key_path:
        default = "" if args.workers is not None else ", the default with this --bind"
        raise UsageError(f"no local workers (--workers 0{default}) and no --authkey-file: no "
                         "remote worker could join, since the key would be a private "
                         "temporary file; give --authkey-file FILE (or --jobdir DIR, whose key "
                         "is DIR/authkey)")
    if key_path and os.path.exists(key_path):
        keyfile.read(key_path)
    status = _status_address(args.status or settings["STATUS_BIND"])
    token = None if status is None or is_loopback(status[0]) else \
        os.environ.get(STATUS_TOKEN_ENV) or secrets.token_urlsafe(24)
    stats_file = args.stats or (os.path.join(jobdir, "stats.json") if jobdir else None)
    return Plan(spider_cls, settings, starts, outputs, (host, port), workers, key_path, jobdir,
                journal, spider_args, status=status, status_token=token, stats_file=stats_file,
                tls=tls, tls_fingerprint=fingerprint, limits=_limits(settings),
                new_round=new_round, warc=warc_output, redis=backend)


def _backend(args: argparse.Namespace, settings: dict[str, Any], spider: str, output: str,
             spider_args: dict[str, str]) -> Any:
    """The Redis crawl to run (claimed, or checked to be this one), or None (embedded)."""
    if args.backend in (None, "embedded"):
        if args.crawl:
            raise UsageError("--crawl names a crawl in Redis: give --backend redis://...")
        return None
    if settings["JOBDIR"]:
        raise UsageError("--jobdir and --backend redis://: the crawl's state is in Redis "
                         "(run the same command again to resume); use --stats FILE for "
                         "stats.json")
    from .frontier.redis_crawl import RedisCrawl
    return RedisCrawl.open(args.backend, args.crawl or spider, settings["REDIS_SHARDS"],
                           {"spider": spider, "output": output, "spider_args": spider_args})


def _tls(args: argparse.Namespace, loopback: bool,
         bind: str) -> tuple[ssl.SSLContext | None, str | None]:
    """The listener's TLS context and its certificate's fingerprint; UsageError for a
    half-given pair, unusable files, or a reachable address with neither TLS nor --insecure."""
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert:
        try:
            return (channel.server_context(args.tls_cert, args.tls_key),
                    channel.fingerprint_of(args.tls_cert))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise UsageError(f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
    if not loopback and not args.insecure:
        raise UsageError(f"--bind {bind} can be reached from other hosts: give --tls-cert and "
                         "--tls-key (workers then check the master with --tls-ca or "
                         "--tls-fingerprint), or --insecure for plain TCP on a network you "
                         "trust (or reach a loopback master over ssh -L or WireGuard)")
    return None, None


def _limits(settings: dict[str, Any]) -> Limits:
    return Limits(challenge=settings["LISTENER_CHALLENGE_TIMEOUT"],
                  idle=settings["LISTENER_IDLE_TIMEOUT"],
                  per_address=settings["LISTENER_MAX_PER_ADDRESS"])


def _feed_specs(outputs: list[tuple[str, bool]], overwrite: bool, settings: dict[str, Any],
                name: str) -> list[feeds.FeedSpec]:
    """-o/-O if given, else FEEDS, else <spider>.jsonl; --overwrite makes each overwrite."""
    specs = feeds.from_cli(outputs, settings) or feeds.from_settings(settings) or \
        feeds.from_cli([(f"{name}.jsonl", False)], settings)
    return [replace(s, overwrite=True) for s in specs] if overwrite else specs


def _warc_spec(given: list[tuple[str, bool]], settings: dict[str, Any],
               overwrite: bool) -> feeds.FeedSpec | None:
    """The WARC output: an -o/-O FILE.warc.gz, else WARC_OUTPUT; its path is set in
    WARC_OUTPUT, which tells the workers to keep what they send and receive."""
    if not given and settings["WARC_OUTPUT"]:
        given = [(settings["WARC_OUTPUT"], False)]
    if not given:
        return None
    if len(given) > 1:
        raise UsageError(f"one WARC output at most: {', '.join(p for p, _ in given)}")
    path, replace_it = given[0]
    if not warc.is_warc(path):
        raise UsageError(f"WARC_OUTPUT {path!r}: the file name must end in .warc.gz")
    warc.require_warcio()
    settings["WARC_OUTPUT"] = path
    return feeds.FeedSpec(path, "warc", overwrite=replace_it or overwrite)


def _feed_paths(specs: list[feeds.FeedSpec], journal: Any,
                params: dict[str, Any]) -> list[tuple[feeds.FeedSpec, str]]:
    """Each feed's path: a resumed one's from the journal, a new one's rendered and checked."""
    outputs = []
    for spec in specs:
        progress = journal.feed_progress(spec.key) if journal is not None else None
        path = progress[0] if progress else spec.render(params)
        if progress is None:
            feeds.check_new(spec, path)
        outputs.append((spec, path))
    paths = [path for _, path in outputs]
    if len(set(paths)) < len(paths):
        raise UsageError(f"two feeds write to the same place: {', '.join(paths)}")
    return outputs


def _status_address(text: str) -> tuple[str, int] | None:
    if text.strip().lower() in ("off", "none", ""):
        return None
    try:
        return manager.parse_address(text, port_zero=True)
    except UsageError:
        raise UsageError(f"--status/STATUS_BIND {text!r}: expected HOST:PORT or off") from None


def _spider_args(pairs: list[str]) -> dict[str, str]:
    args = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UsageError(f"-a {pair!r}: expected NAME=VALUE, NAME a Python identifier")
        args[name.strip()] = value
    return args


def _start_requests(spider_cls: type[Spider], settings: dict[str, Any], args: dict[str, str],
                    seed_urls: SeedFile | None) -> StartRequests:
    try:
        spider = make_spider(spider_cls, settings, args)
    except Exception as exc:  # the spider's own code: a clear error, before anything starts
        raise UsageError(f"spider {spider_cls.name!r} fails to start with arguments "
                         f"{args}: {exc!r}") from exc
    HttpAuth.for_spider(spider, settings)  # credentials without a domain: refused here
    return StartRequests(spider, settings["FINGERPRINT_IGNORE_PARAMS"], seed_urls)
