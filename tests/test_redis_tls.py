"""rediss://: the Redis backend over TLS to a real redis-server with a private CA, the CA
given in the URL (?ssl_ca_certs=), a password in the URL; without the CA a clear exit 2."""
from __future__ import annotations

import pytest

from crawler.sitegen import Site
from procs import QUIET, read_jsonl, write_seeds
from redis_server import RedisServer, start_or_skip
from test_e2e import assert_one_item_per_page
from test_tls import pki  # noqa: F401  (the fixture: a private CA and a 127.0.0.1 certificate)

PASSWORD = "s3cret"


class TlsRedisServer(RedisServer):
    """redis-server speaking only TLS on its port."""

    def __init__(self, folder, certs) -> None:
        super().__init__(folder, "--port", "0", "--tls-cert-file", certs.cert, "--tls-key-file",
                         certs.key, "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", "no",
                         "--requirepass", PASSWORD)
        self.options[:0] = ["--tls-port", str(self.port)]
        self.ca = certs.ca

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"

    def client(self, **kwargs):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=self.ca,
                           password=PASSWORD, **kwargs)


@pytest.fixture
def tls_redis(tmp_path, pki):  # noqa: F811
    start_or_skip(tmp_path / "probe").kill()  # skips loudly without redis-server or redis-py
    server = TlsRedisServer(tmp_path / "redis", pki).start()
    yield server
    server.kill()


def test_a_crawl_on_redis_over_tls(serve, project, run_master, tls_redis):
    site = serve(Site(pages=40))
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--backend", tls_redis.url,
                         "--workers", 2, "-o", out, "--status", "off", *QUIET], timeout=40)
    assert master.returncode == 0, master.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    assert PASSWORD not in master.stdout + master.stderr
    assert tls_redis.client().exists("crawler:generic:meta") == 1


def test_rediss_without_the_private_ca_is_a_clear_error(serve, project, run_master, tls_redis):
    site = serve(Site(pages=5))
    url = tls_redis.url.partition("?")[0]
    master = run_master([write_seeds(project, site.url), "--backend", url, "--workers", 1,
                         "--status", "off", *QUIET], timeout=20)
    assert master.returncode == 2, master.describe()
    assert "CERTIFICATE_VERIFY_FAILED" in master.stderr and "ssl_ca_certs" in master.stderr
    assert PASSWORD not in master.stderr


@pytest.mark.parametrize("query, says", [("?ssl_ca_certs=/nonexistent.pem", "no file"),
                                          ("?ssl_cert_reqs=none", "unknown option")])
def test_bad_rediss_options_are_refused_at_start(serve, project, run_master, tls_redis,
                                                 query, says):
    site = serve(Site(pages=5))
    url = tls_redis.url.partition("?")[0] + query
    master = run_master([write_seeds(project, site.url), "--backend", url, "--workers", 1,
                         "--status", "off", *QUIET], timeout=20)
    assert master.returncode == 2 and says in master.stderr, master.describe()
