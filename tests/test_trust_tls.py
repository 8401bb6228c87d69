"""TLS between master and workers: the master's certificate (made at test time), workers
that check it against a CA bundle or a pinned fingerprint and refuse a master whose
certificate does not verify, the authkey challenge inside TLS, and nothing bound beyond
loopback without TLS or --insecure. Real masters and workers."""
from __future__ import annotations

import hashlib
import signal
import socket
import ssl

import pytest

from crawler.link import channel
from procs import QUIET, free_port, hold_first_page, read_jsonl, wait_for, write_key, write_seeds
from rogue import RawPeer, read_all
from test_e2e import assert_one_item_per_page, listening_address, summary_line
from test_tls import pki  # noqa: F401  (the fixture: a private CA, a cert for 127.0.0.1)


def tls_master(procs, project, site, tmp_path, pki, host="127.0.0.1", workers=0, extra=()):
    key = write_key(tmp_path / "key")
    out = project / "out.jsonl"
    master = procs.master([write_seeds(project, site.url), "--bind", f"{host}:{free_port(host)}",
                           "--authkey-file", key, "--workers", workers, "-o", out,
                           "--tls-cert", pki.cert, "--tls-key", pki.key, *extra, *QUIET],
                          project)
    return master, listening_address(master), key, out


def fingerprint(pki) -> str:
    with open(pki.cert) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def test_a_crawl_over_tls_with_local_and_remote_workers(site, project, procs, tmp_path, pki):
    gate = hold_first_page(site)  # the local worker must not end the crawl alone
    master, address, key, out = tls_master(procs, project, site, tmp_path, pki, workers=1)
    hint = master.wait_output("remote workers:", 10)
    assert f"--tls-fingerprint {fingerprint(pki)}" in hint, master.describe()
    worker = procs.worker(address, key, ["-c", 4, "--tls-ca", pki.ca], cwd=project)
    worker.wait_output("spider generic", 20, stream="stderr")
    gate.set()
    for proc in (worker, master):
        assert proc.wait(30) == 0, proc.describe()
    assert summary_line(master).group(1, 3) == ("finished", "0"), master.describe()
    assert_one_item_per_page(read_jsonl(out), site)


def test_add_and_stop_reach_a_tls_master(site, project, procs, tmp_path, pki):
    master, address, key, out = tls_master(procs, project, site, tmp_path, pki, workers=1,
                                           extra=["--keep-running"])
    pin = f"--tls-fingerprint {fingerprint(pki)}"
    assert f"python -m crawler.add {address} --authkey-file {key} {pin}" in \
        master.wait_output("keeping running", 10), master.describe()
    added = procs.module("crawler.add", [address, "--authkey-file", key, *pin.split(),
                                         site.url + "?added"], project, "add")
    assert added.wait(20) == 0, added.describe()
    assert "1 URLs added" in added.stdout, added.describe()
    wait_for(lambda: out.exists() and f'"{site.url}?added"' in out.read_text(), 20,
             "the added URL's item", describe=master.describe)
    stop = procs.module("crawler.stop", [address, "--authkey-file", key, "--tls-ca", pki.ca],
                        project, "stop")
    assert stop.wait(20) == 0, stop.describe()
    assert master.wait(30) == 0, master.describe()
    assert summary_line(master).group(1) == "stopped", master.describe()
    assert site.url + "?added" in {item["url"] for item in read_jsonl(out)}


@pytest.mark.parametrize("how", ["another CA", "another name", "another fingerprint"])
def test_a_worker_refuses_a_master_whose_certificate_does_not_verify(
        how, site, project, procs, tmp_path, pki):
    host = "127.0.0.2" if how == "another name" else "127.0.0.1"  # the cert names 127.0.0.1
    master, address, key, out = tls_master(procs, project, site, tmp_path, pki, host=host)
    check = {"another CA": ["--tls-ca", pki.other_ca], "another name": ["--tls-ca", pki.ca],
             "another fingerprint": ["--tls-fingerprint", "ab" * 32]}[how]
    worker = procs.worker(address, key, check, cwd=project)
    assert worker.wait(20) == 2, worker.describe()
    assert "TLS certificate does not verify" in worker.stderr, worker.describe()
    assert not site.log  # it fetched nothing for this master
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()
    assert summary_line(master).group(2) == "0", master.describe()


def test_the_authkey_challenge_runs_inside_tls(site, project, procs, tmp_path, pki):
    master, address, key, out = tls_master(procs, project, site, tmp_path, pki)
    host, port = address.rsplit(":", 1)
    # In the clear, the master says nothing: no challenge before a TLS handshake.
    plain = socket.create_connection((host, int(port)), timeout=10)
    plain.settimeout(1.5)
    with pytest.raises(TimeoutError):
        plain.recv(100)
    plain.close()
    # Inside TLS, the challenge; the wrong key is refused there.
    context = ssl.create_default_context(cafile=pki.ca)
    with context.wrap_socket(socket.create_connection((host, int(port)), timeout=10),
                             server_hostname=host) as tls:
        challenge = tls.recv(4 + 11 + 20)
        assert challenge[4:15] == b"#CHALLENGE#", challenge
        tls.sendall(b"\x00\x00\x00\x10" + b"0" * 16)  # a wrong digest
        assert read_all(tls)[4:] == b"#FAILURE#"
    master.wait_output("wrong authkey", 10, "stderr")
    worker = procs.worker(address, key, ["-c", 4, "--tls-ca", pki.ca], cwd=project)
    for proc in (worker, master):
        assert proc.wait(30) == 0, proc.describe()
    assert_one_item_per_page(read_jsonl(out), site)


def test_a_plain_worker_does_not_get_through_to_a_tls_master(site, project, procs, tmp_path,
                                                            pki):
    master, address, key, out = tls_master(procs, project, site, tmp_path, pki)
    host, port = address.rsplit(":", 1)
    peer = RawPeer((host, int(port)), timeout=3)
    with pytest.raises(OSError):  # no challenge comes in the clear: the read times out
        peer.authenticate(key.read_bytes().strip())
    peer.close()
    master.send(signal.SIGTERM)
    assert master.wait(20) == 130, master.describe()


# -- nothing reachable without TLS or --insecure ---------------------------------------------------
def test_the_master_refuses_a_reachable_address_without_tls_or_insecure(site, project,
                                                                        run_master, tmp_path):
    key = write_key(tmp_path / "key")
    seeds = write_seeds(project, site.url)
    master = run_master([seeds, "--bind", "0.0.0.0:0", "--authkey-file", key])
    assert master.returncode == 2, master.describe()
    assert "can be reached from other hosts: give --tls-cert and --tls-key" in master.stderr
    assert "--insecure" in master.stderr
    half = run_master([seeds, "--tls-cert", tmp_path / "c.pem"], name="half")
    assert half.returncode == 2 and "--tls-cert and --tls-key go together" in half.stderr
    bad = run_master([seeds, "--tls-cert", tmp_path / "c.pem", "--tls-key", key], name="bad")
    assert bad.returncode == 2 and "--tls-cert" in bad.stderr, bad.describe()
    assert site.log == []


def test_a_worker_refuses_plain_tcp_to_another_host_without_insecure(procs, project, tmp_path):
    key = write_key(tmp_path / "key")
    worker = procs.worker("192.0.2.1:9", key, cwd=project)  # TEST-NET-1: never contacted
    assert worker.wait(10) == 2, worker.describe()
    assert "is not on this host: give --tls-ca or --tls-fingerprint" in worker.stderr
    pinned = procs.worker("127.0.0.1:9", key, ["--tls-fingerprint", "nothex"], cwd=project,
                          name="pinned")
    assert pinned.wait(10) == 2 and "expected 64 hex digits" in pinned.stderr


def test_fingerprints_are_read_as_users_write_them(pki):
    digest = fingerprint(pki)
    pretty = "SHA256:" + ":".join(digest[i:i + 2].upper() for i in range(0, 64, 2))
    assert channel.parse_fingerprint(pretty) == digest == channel.fingerprint_of(pki.cert)
    assert channel.parse_fingerprint("ab" * 31) is None
