"""TLS as users need it: TLS_VERIFY, TLS_CA_BUNDLE and the environment's CA bundle.

A private CA and a server certificate for 127.0.0.1 and localhost are made at test time
(cryptography); the servers speak HTTPS on loopback and log each handshake (resumed, SNI,
ALPN). Every fetch case runs both ways, a plain GET (prepared quickly) and a POST with a
header of its own in bytes (prepared by requests), each checked to have taken its path and
neither requests' transport. The environment is passed to FetchConfig.from_settings, never
changed in this process.
"""
from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import ssl
import json
import subprocess
import sys
import threading
import types
import warnings
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from badserver import BadServer, TunnelProxy
from crawler import Request, config
from crawler.errors import UsageError
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError
from crawler.http import tls
from crawler.http.tls import ENV_VARS
from crawler.sitegen import Site, SiteServer
from procs import QUIET, base_env, free_port, read_jsonl, write_key, write_seeds
from test_e2e import (assert_each_page_fetched_once, assert_one_item_per_page,
                      listening_address, summary_line)

HOSTS = ("127.0.0.1", "127.0.0.2", "localhost")  # trusted by the address guard here
ROBOTS = b"User-agent: *\nAllow: /\n"


# -- certificates ------------------------------------------------------------------------------
@dataclass
class Pki:
    ca: str           # the private CA's certificate (PEM)
    cert: str         # the server's, for 127.0.0.1 and localhost, signed by the CA
    key: str
    other_ca: str     # a CA nobody signed anything with

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2 and 1.3 with session tickets; ALPN h2 preferred, so a client that offers
        it gets it."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context


def _certificate(subject: str, key, issuer: tuple[str, object] | None = None,
                 names: list[x509.GeneralName] = ()) -> x509.Certificate:
    """A CA certificate (issuer None: self-signed) or a server one signed by issuer."""
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(public).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   issuer_key.public_key()), False))
    if names:
        builder = (builder.add_extension(x509.SubjectAlternativeName(names), False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  False))
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *objects) -> str:
    pem = b"".join(o.public_bytes(serialization.Encoding.PEM) if isinstance(o, x509.Certificate)
                   else o.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()) for o in objects)
    path.write_bytes(pem)
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("test CA", ca_key)
    server = _certificate("127.0.0.1", server_key, ("test CA", ca_key), [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    return Pki(_write(folder / "ca.pem", ca), _write(folder / "server.pem", server),
               _write(folder / "server.key", server_key),
               _write(folder / "other-ca.pem", _certificate("other CA", other_key)))


@pytest.fixture(scope="module")
def server(pki):
    with BadServer(tls=pki.server_context()) as s:
        yield s


@pytest.fixture(scope="module")
def misnamed(pki):
    """The same certificate on 127.0.0.2, a name it does not cover."""
    with BadServer(host="127.0.0.2", tls=pki.server_context()) as s:
        yield s


# -- both ways ---------------------------------------------------------------------------------
class Way:
    """How a request is prepared: a plain GET (quickly) or a POST with a bytes header (by
    requests). outcome() checks the preparation by counting requests.Session.prepare_request
    calls; requests' transport must never be used."""

    def __init__(self, name: str, monkeypatch) -> None:
        self.name, self.calls, self.error = name, 0, None
        original = requests.Session.prepare_request

        def counted(session, *args, **kwargs):
            self.calls += 1
            return original(session, *args, **kwargs)

        monkeypatch.setattr(requests.Session, "prepare_request", counted)
        monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                            lambda *a, **k: pytest.fail("requests' transport used"))

    def outcome(self, fetcher: Fetcher, server: BadServer, host: str | None = None) -> str:
        """"status <code>" when fetched, else the failure reason (the error in self.error)."""
        request = Request(server.url("/ok", host)) if self.name == "fast" else \
            Request(server.url("/echo", host), method="POST", body=b"x",
                    headers={"X-Bytes": b"1"})
        before = self.calls
        try:
            return f"status {fetcher.fetch(request).status}"
        except FetchError as exc:
            self.error = exc
            return exc.reason
        finally:
            assert self.calls - before == (self.name == "requests"), f"not the {self.name} path"


@pytest.fixture(params=["fast", "requests"])
def way(request, monkeypatch) -> Way:
    return Way(request.param, monkeypatch)


@pytest.fixture
def make_fetcher():
    """make_fetcher(env=None, **settings): a Fetcher for these settings and environment
    (none: an empty one). Its connections are closed after the test, so that the servers'
    connection threads end."""
    made: list[Fetcher] = []

    def make(env: dict[str, str] | None = None, **overrides) -> Fetcher:
        settings = dict(config.defaults(), **overrides)
        made.append(Fetcher(FetchConfig.from_settings(settings, HOSTS, env or {})))
        return made[-1]

    yield make
    for fetcher in made:
        fetcher.session.close()


# -- which certificates are trusted ----------------------------------------------------------
def test_default_settings_do_not_trust_a_private_ca(server, way, make_fetcher):
    assert way.outcome(make_fetcher(), server) == "tls"


def test_tls_ca_bundle_trusts_the_private_ca(server, way, pki, make_fetcher):
    fetcher = make_fetcher(TLS_CA_BUNDLE=pki.ca)
    assert way.outcome(fetcher, server) == "status 200"
    assert way.outcome(fetcher, server, "localhost") == "status 200"


def test_tls_ca_bundle_may_be_a_folder_of_hashed_certificates(server, way, pki, tmp_path,
                                                              make_fetcher):
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to name the certificate by its hash")
    name = subprocess.run(["openssl", "x509", "-subject_hash", "-noout", "-in", pki.ca],
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    shutil.copy(pki.ca, tmp_path / f"{name}.0")
    fetcher = make_fetcher(TLS_CA_BUNDLE=str(tmp_path))
    assert way.outcome(fetcher, server) == "status 200"


@pytest.mark.parametrize("name", ENV_VARS)
def test_the_environments_bundle_is_used_when_tls_ca_bundle_is_unset(server, way, pki, name,
                                                                     make_fetcher):
    assert way.outcome(make_fetcher({name: pki.ca}), server) == "status 200"


def test_requests_ca_bundle_comes_before_ssl_cert_file(server, way, pki, make_fetcher):
    ours = make_fetcher({"REQUESTS_CA_BUNDLE": pki.ca, "SSL_CERT_FILE": pki.other_ca})
    theirs = make_fetcher({"REQUESTS_CA_BUNDLE": pki.other_ca, "SSL_CERT_FILE": pki.ca})
    assert (way.outcome(ours, server), way.outcome(theirs, server)) == \
        ("status 200", "tls")


def test_tls_ca_bundle_comes_before_the_environment(server, way, pki, make_fetcher):
    ours = make_fetcher({"REQUESTS_CA_BUNDLE": certifi.where()}, TLS_CA_BUNDLE=pki.ca)
    theirs = make_fetcher({"REQUESTS_CA_BUNDLE": pki.ca}, TLS_CA_BUNDLE=pki.other_ca)
    assert (way.outcome(ours, server), way.outcome(theirs, server)) == \
        ("status 200", "tls")


@pytest.mark.parametrize("settings", ["bundle", "verify off"])
def test_both_paths_share_the_connection(server, pki, settings, make_fetcher):
    fetcher = make_fetcher(**({"TLS_CA_BUNDLE": pki.ca} if settings == "bundle" else
                              {"TLS_VERIFY": False}))
    before, handshakes = server.connections, len(server.handshakes)
    for request in (Request(server.url("/ok")), Request(server.url("/echo"), method="POST",
                                                        body=b"x", headers={"X-Bytes": b"1"}),
                    Request(server.url("/ok"))):
        assert fetcher.fetch(request).status == 200
    assert server.connections == before + 1
    assert len(server.handshakes) == handshakes + 1


# -- the handshake: kept alive, resumed, SNI, ALPN -------------------------------------------
def test_connections_are_kept_alive_and_sessions_resumed(server, pki, make_fetcher):
    server.routes["/bye"] = lambda ex: ex.respond("200 OK", b"bye", close=True)
    fetcher = make_fetcher(TLS_CA_BUNDLE=pki.ca)
    before, handshakes = server.connections, len(server.handshakes)
    for path in ("/ok", "/ok", "/bye", "/ok", "/ok", "/bye", "/ok"):
        assert fetcher.fetch(Request(server.url(path))).status == 200
    assert server.connections == before + 3  # a new connection after each "close" only
    assert [h.resumed for h in server.handshakes[handshakes:]] == [False, True, True]
    other = make_fetcher(TLS_CA_BUNDLE=pki.ca)  # sessions are per fetcher, not per process
    assert other.fetch(Request(server.url("/ok"))).status == 200
    assert server.handshakes[-1].resumed is False


def test_sessions_are_resumed_across_threads(server, pki, make_fetcher):
    server.routes["/bye"] = lambda ex: ex.respond("200 OK", b"bye", close=True)
    fetcher = make_fetcher(TLS_CA_BUNDLE=pki.ca)
    handshakes = len(server.handshakes)
    assert fetcher.fetch(Request(server.url("/bye"))).status == 200  # not kept: a new one next
    thread = threading.Thread(target=fetcher.fetch, args=(Request(server.url("/ok")),))
    thread.start()
    thread.join(10)
    thread = threading.Thread(target=fetcher.fetch, args=(Request(server.url("/ok")),))
    thread.start()
    thread.join(10)  # reuses the second connection: no third handshake
    assert [h.resumed for h in server.handshakes[handshakes:]] == [False, True]


def test_sni_names_the_host_and_alpn_is_http11(server, pki, make_fetcher):
    fetcher = make_fetcher(TLS_CA_BUNDLE=pki.ca)
    handshakes = len(server.handshakes)
    assert fetcher.fetch(Request(server.url("/ok", "localhost"))).status == 200
    assert fetcher.fetch(Request(server.url("/ok"))).status == 200
    seen = [(h.sni, h.alpn) for h in server.handshakes[handshakes:]]
    assert seen == [("localhost", "http/1.1"), (None, "http/1.1")]  # no SNI for an address


def test_the_sessions_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(tls, "MAX_SESSIONS", 3)
    kept = tls.Tls(True)
    for host in ("h0", "h1", "h2", "h3", "h4", "h2"):  # h2 used again: kept the longest
        kept.keep_session(types.SimpleNamespace(session=object()), host, 443)
    assert list(kept.sessions) == [("h3", 443), ("h4", 443), ("h2", 443)]


@pytest.mark.parametrize("settings", ["bundle", "verify off"])
def test_https_through_a_connect_proxy(server, misnamed, pki, settings, make_fetcher):
    with TunnelProxy() as proxy:
        fetcher = make_fetcher(**({"TLS_CA_BUNDLE": pki.ca} if settings == "bundle" else
                                  {"TLS_VERIFY": False}),
                               HTTP_PROXY=proxy.proxy_url("bot:s%3Acret"))
        handshakes = len(server.handshakes)
        for _ in range(2):
            echo = fetcher.fetch(Request(server.url("/echo", "localhost"))).body
            assert json.loads(echo)["target"] == "/echo"  # inside the tunnel: origin form
        assert [r.target for r in proxy.received] == [f"localhost:{server.port}"]
        assert proxy.received[0].headers["Proxy-Authorization"] == "Basic Ym90OnM6Y3JldA=="
        assert "Proxy-Authorization" not in json.loads(echo)["headers"]
        assert [h.sni for h in server.handshakes[handshakes:]] == ["localhost"]
        misnamed_outcome = "status 200" if settings == "verify off" else "tls"
        try:
            got = f"status {fetcher.fetch(Request(misnamed.url('/ok'))).status}"
        except FetchError as exc:
            got = exc.reason
        assert got == misnamed_outcome


def test_a_certificate_for_another_name_is_tls(misnamed, way, pki, make_fetcher):
    assert way.outcome(make_fetcher(TLS_CA_BUNDLE=pki.ca), misnamed) == "tls"
    assert "mismatch" in str(way.error)


def test_tls_verify_off_accepts_any_certificate(server, misnamed, way, make_fetcher):
    fetcher = make_fetcher({"REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem"}, TLS_VERIFY=False)
    assert way.outcome(fetcher, server) == "status 200"
    assert way.outcome(fetcher, misnamed) == "status 200"


def test_tls_verify_off_warns_once_and_not_per_request(server, caplog, make_fetcher):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fetcher = make_fetcher(TLS_VERIFY=False)
        for path in ("/ok", "/echo", "/ok"):
            assert fetcher.fetch(Request(server.url(path))).status == 200
        assert fetcher.fetch(Request(server.url("/ok", host="localhost"))).status == 200
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == \
        ["TLS_VERIFY is off: server certificates are not checked"]
    assert [str(w.message) for w in caught] == []


# -- a bundle that cannot be used ------------------------------------------------------------
@pytest.fixture
def not_pem(tmp_path) -> str:
    path = tmp_path / "key-not-ca.pem"
    path.write_text("not a certificate\n")
    return str(path)


def test_the_master_refuses_an_unusable_tls_ca_bundle(not_pem):
    for path, problem in [("/nonexistent/ca.pem", "no such file or folder"),
                          (not_pem, "not a PEM file of CA certificates")]:
        with pytest.raises(UsageError, match=re.escape(f"TLS_CA_BUNDLE={path!r}: {problem}")):
            config.merge({}, strict=[{"TLS_CA_BUNDLE": path}])
    assert config.merge({}, strict=[{"TLS_CA_BUNDLE": "/nonexistent/ca.pem",
                                     "TLS_VERIFY": "false"}])["TLS_VERIFY"] is False


@pytest.mark.parametrize("name", ENV_VARS)
def test_a_worker_refuses_an_unusable_bundle_when_it_configures(name, not_pem):
    settings = dict(config.defaults(), TLS_CA_BUNDLE="/only/on/the/master/ca.pem")
    with pytest.raises(UsageError, match="TLS_CA_BUNDLE='/only/on/the/master/ca.pem'"):
        FetchConfig.from_settings(settings, env={})
    with pytest.raises(UsageError, match=re.escape(f"${name}={not_pem!r}: not a PEM file")):
        FetchConfig.from_settings(config.defaults(), env={name: not_pem})


# -- real processes ----------------------------------------------------------------------------
class HttpsSiteServer(SiteServer):
    """A generated site over HTTPS, with a robots.txt."""

    def __init__(self, site: Site, context: ssl.SSLContext) -> None:
        super().__init__(site)
        self.context = context
        self.extra["/robots.txt"] = lambda: (200, "text/plain", ROBOTS)

    @property
    def url(self) -> str:
        return "https" + super().url[len("http"):]

    def finish_request(self, request, client_address) -> None:
        request.settimeout(10)
        conn = self.context.wrap_socket(request, server_side=True)
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ssl.SSLError):  # a client refusing our certificate
            super().handle_error(request, client_address)


@pytest.fixture
def https_site(pki):
    server = HttpsSiteServer(Site(pages=12), pki.server_context()).start()
    yield server
    server.close()


@pytest.fixture
def clean_env(procs) -> dict[str, str]:
    """A child's environment without a CA bundle of its own."""
    env = base_env(procs.tmpdir)
    for name in ENV_VARS:
        env.pop(name, None)
    return env


def test_https_crawl_under_a_private_ca(https_site, pki, project, run_master, clean_env):
    seeds = write_seeds(project, https_site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, "-s", f"TLS_CA_BUNDLE={pki.ca}",
                         *QUIET], env=clean_env)
    assert master.returncode == 0, master.describe()
    assert_one_item_per_page(read_jsonl(out), https_site)
    assert_each_page_fetched_once(https_site)
    assert "/robots.txt" in [path for path, _, _ in https_site.log]
    total = str(len(https_site.site.paths()))
    assert summary_line(master).group(1, 2, 3) == ("finished", total, "0"), master.describe()


def test_https_crawl_without_the_ca_fails_on_robots(https_site, project, run_master, clean_env):
    seeds = write_seeds(project, https_site.url)
    out = project / "out.jsonl"
    master = run_master([seeds, "--workers", 2, "-o", out, *QUIET], env=clean_env)
    assert master.returncode == 0, master.describe()
    assert summary_line(master).group(1, 2, 3) == ("finished", "0", "1"), master.describe()
    reason, url = (project / "out.jsonl.failures.tsv").read_text().rstrip("\n").split("\t")
    assert url == https_site.url
    assert reason == "robots_unavailable:tls", reason
    assert https_site.log == []  # no request got past the handshake


def test_master_exits_2_on_a_missing_tls_ca_bundle(project, site, run_master):
    seeds = write_seeds(project, site.url)
    master = run_master([seeds, "-s", "TLS_CA_BUNDLE=/nonexistent/ca.pem"])
    assert master.returncode == 2, master.describe()
    assert "setting TLS_CA_BUNDLE='/nonexistent/ca.pem': no such file or folder" in \
        master.stderr, master.describe()
    assert site.log == []


def test_each_worker_reads_its_own_environment(https_site, pki, project, procs, clean_env,
                                               tmp_path):
    address, key = f"127.0.0.1:{free_port()}", write_key(tmp_path / "k")
    seeds, out = write_seeds(project, https_site.url), project / "out.jsonl"
    master = procs.master([seeds, "--bind", address, "--authkey-file", key, "--workers", 0,
                           "-o", out, "-s", "SHUTDOWN_GRACE=1", *QUIET],
                          project, env=clean_env)  # the grace: for the broken worker
    listening_address(master)
    broken = procs.worker(address, key, cwd=project, name="broken",
                          env=dict(clean_env, REQUESTS_CA_BUNDLE="/nonexistent/ca.pem"))
    assert broken.wait(15) == 2, broken.describe()
    assert "$REQUESTS_CA_BUNDLE='/nonexistent/ca.pem': no such file or folder" in \
        broken.stderr, broken.describe()
    good = procs.worker(address, key, ["-c", 4], cwd=project, name="good",
                        env=dict(clean_env, SSL_CERT_FILE=pki.ca))
    for proc in (master, good):
        assert proc.wait(20) == 0, proc.describe()
    assert summary_line(master).group(1, 3) == ("finished", "0"), master.describe()
    assert_one_item_per_page(read_jsonl(out), https_site)
