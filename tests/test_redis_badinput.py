"""Bad input with --backend redis://: a clear error at start (exit 2) naming the problem, and
nothing in Redis overwritten. A real redis-server on a free loopback port."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.frontier.redis_keys import LAYOUT  # noqa: E402
from crawler.sitegen import Site  # noqa: E402
from procs import QUIET, base_env, free_port, read_jsonl, write_seeds  # noqa: E402
from redis_server import start_or_skip  # noqa: E402
from test_redis_e2e import crawl_keys  # noqa: E402

OFF = ["--status", "off", "--workers", 1, *QUIET]


@pytest.fixture
def redis_server(tmp_path):
    server = start_or_skip(tmp_path / "redis")
    yield server
    server.kill()


@pytest.fixture
def secured(tmp_path):
    server = start_or_skip(tmp_path / "redis-auth", "--requirepass", "s3cret")
    yield server
    server.kill()


def refused(run_master, project, url, *extra, env=None):
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, "http://127.0.0.1:9/"), "--backend", url,
                         "-o", out, *OFF, *extra], timeout=20, env=env)
    assert master.returncode == 2, master.describe()
    assert not out.exists(), "a refused crawl made its output file"
    return master.stderr


def test_unreachable_redis(run_master, project):
    error = refused(run_master, project, f"redis://127.0.0.1:{free_port()}/0")
    assert "error: cannot reach Redis at redis://127.0.0.1:" in error, error


def test_malformed_backend_url(run_master, project):
    assert "expected redis://HOST:PORT/DB" in refused(run_master, project, "http://x:1/0")
    assert "the database must be a number" in refused(run_master, project,
                                                      "redis://127.0.0.1:1/zero")


def test_wrong_or_missing_password(run_master, project, secured):
    url = f"redis://:wrong@127.0.0.1:{secured.port}/0"
    error = refused(run_master, project, url)
    assert "refused the password" in error and "wrong" not in error, error
    error = refused(run_master, project, secured.url)
    assert "needs a password" in error, error


def test_password_from_environment_and_url(serve, run_master, project, secured):
    site = serve(Site(pages=10))
    env = dict(base_env(), CRAWLER_REDIS_PASSWORD="s3cret")
    out = project / "env.jsonl"
    master = run_master([write_seeds(project, site.url), "--backend", secured.url,
                         "-o", out, *OFF], timeout=30, env=env)
    assert master.returncode == 0, master.describe()
    assert len(read_jsonl(out)) == len(site.site.paths())
    out = project / "url.jsonl"
    master = run_master([write_seeds(project, site.url), "--backend",
                         f"redis://:s3cret@127.0.0.1:{secured.port}/0", "--crawl", "inurl",
                         "-o", out, *OFF], timeout=30, name="inurl")
    assert master.returncode == 0, master.describe()
    assert "s3cret" not in master.stdout + master.stderr
    assert len(read_jsonl(out)) == len(site.site.paths())


def test_another_crawl_with_the_same_name(run_master, project, redis_server):
    client = redis_server.client()
    client.hset("crawler:generic:meta", mapping={"layout": LAYOUT, "shards": "1",
                                                 "spider": "books", "output": "x",
                                                 "spider_args": "{}"})
    client.sadd("crawler:generic:{generic.0}:seen", b"fp")
    before = crawl_keys(client, "generic")
    error = refused(run_master, project, redis_server.url)
    assert "holds another crawl named 'generic' (spider 'books'" in error, error
    assert crawl_keys(client, "generic") == before


@pytest.mark.parametrize("layout", ["0", "1"])  # 1: hosts' queues as one sorted set each
def test_keys_of_an_older_layout(run_master, project, redis_server, layout):
    client = redis_server.client()
    client.hset("crawler:generic:meta", mapping={"layout": layout, "shards": "1"})
    client.zadd("crawler:generic:{generic.0}:q:a.example", {b"an older queue": 1})
    before = crawl_keys(client, "generic")
    error = refused(run_master, project, redis_server.url)
    assert f"in key layout {layout}; this crawler uses layout {LAYOUT}" in error, error
    assert crawl_keys(client, "generic") == before


def test_keys_without_a_layout_version(run_master, project, redis_server):
    client = redis_server.client()
    client.rpush("crawler:generic:requests", b"an older crawler's queue")
    before = crawl_keys(client, "generic")
    error = refused(run_master, project, redis_server.url)
    assert "without a layout version (crawler:generic:requests)" in error, error
    assert crawl_keys(client, "generic") == before


def test_jobdir_with_redis_and_bad_crawl_name(run_master, project, redis_server, tmp_path):
    error = refused(run_master, project, redis_server.url, "--jobdir", tmp_path / "job")
    assert "--jobdir and --backend redis://" in error, error
    error = refused(run_master, project, redis_server.url, "--crawl", "a:b")
    assert "crawl name 'a:b'" in error, error
    assert list(redis_server.client().scan_iter()) == []
