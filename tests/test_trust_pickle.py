"""The wire carries plain data only, both ways: a pickle that would run code (sent with the
right key) does not run, the connection is dropped and logged, and the crawl goes on. A
peer without the key gets nothing but the challenge. Real masters and workers."""
from __future__ import annotations

import pickle
import socket
import sqlite3

import pytest
from multiprocessing.managers import RemoteError

from crawler.link import manager, wire
from procs import QUIET, free_port, read_jsonl, write_key, write_seeds
from rogue import RawPeer, Relay, RunsCode, read_all
from test_e2e import (assert_each_page_fetched_once, assert_one_item_per_page,
                      listening_address, summary_line)


def start_master(procs, project, site, tmp_path, *extra):
    key = write_key(tmp_path / "key")
    out = project / "out.jsonl"
    master = procs.master([write_seeds(project, site.url), "--bind", f"127.0.0.1:{free_port()}",
                           "--authkey-file", key, "--workers", 0, "-o", out, *extra, *QUIET],
                          project)
    host, port = listening_address(master).rsplit(":", 1)
    return master, (host, int(port)), key, out


def finish_crawl(procs, project, master, address, key, out, site, *worker_args):
    worker = procs.worker(f"{address[0]}:{address[1]}", key, ["-c", 4, *worker_args],
                          cwd=project)
    for proc in (worker, master):
        assert proc.wait(30) == 0, proc.describe()
    assert summary_line(master).group(1, 3) == ("finished", "0"), master.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    return worker


# -- a peer with the key, to the master -------------------------------------------------------
@pytest.mark.parametrize("where", ["first request", "a method's argument"])
def test_a_code_running_pickle_sent_with_the_key_does_not_run_on_the_master(
        where, site, project, procs, tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path)
    marker = tmp_path / "ran"
    peer = RawPeer(address)
    peer.authenticate(key.read_bytes().strip())
    before = {"first request": [], "a method's argument": [
        (None, "accept_connection", ("rogue",), {})]}[where]
    assert [peer.call(request)[0] for request in before] == ["#RETURN"] * len(before)
    peer.send_pickle(RunsCode(marker) if where == "first request" else
                     ("0", "lease", ("rogue", RunsCode(marker), []), {}))
    assert read_all(peer.sock) == b""  # dropped, and not a word sent back
    peer.close()
    assert not marker.exists()
    master.wait_output("dropped a connection from 127.0.0.1:", 10, "stderr")
    assert "the message names posix.system" in master.stderr, master.describe()
    finish_crawl(procs, project, master, address, key, out, site)
    assert not marker.exists()


def test_a_peer_without_the_key_gets_nothing_but_the_challenge(site, project, procs,
                                                               tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path)
    garbage = socket.create_connection(address, timeout=10)
    challenge = garbage.recv(4 + 11 + 20)  # the frame: length, '#CHALLENGE#', 20 random bytes
    assert challenge[4:15] == b"#CHALLENGE#", challenge
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 300)
    assert read_all(garbage) == b""  # then the close, and nothing before it
    garbage.close()
    wrong = RawPeer(address)
    with pytest.raises(Exception):
        wrong.authenticate(b"not the key of this crawl at all")
    after = read_all(wrong.sock)  # nothing follows the failure: no pickled traceback
    wrong.close()
    assert b"Traceback" not in after and b"TRACEBACK" not in after and after == b"", after
    master.wait_output("wrong authkey", 10, "stderr")
    finish_crawl(procs, project, master, address, key, out, site)


# -- a rogue master, to a worker ----------------------------------------------------------------
def payloads(marker):
    return {
        "code": pickle.dumps(("#RETURN", RunsCode(marker))),
        "foreign exception": pickle.dumps(("#ERROR", sqlite3.OperationalError("disk full"))),
        "unknown reply": pickle.dumps(("#WHATEVER", None)),
        "not a pickle": b"\x80\x04garbage",
        "traceback": pickle.dumps(("#TRACEBACK", "KeyError: 'x'")),
        "wrong shape": pickle.dumps(("#RETURN", {"tasks": 5, "wait": "soon", "done": 0})),
    }


@pytest.mark.parametrize("kind", ["code", "foreign exception", "unknown reply",
                                  "not a pickle", "traceback", "wrong shape"])
def test_a_worker_given_a_bad_reply_reconnects_and_the_crawl_goes_on(
        kind, site, project, procs, tmp_path):
    """What a rogue master (or anyone on a plain TCP path) sends in place of a lease reply:
    the worker neither runs it nor dies; it logs, reconnects and finishes the crawl."""
    marker = tmp_path / "ran"
    master, address, key, out = start_master(procs, project, site, tmp_path,
                                             "-s", "LEASE_TIMEOUT=2")
    relay = Relay(address, b"lease", payloads(marker)[kind])
    try:
        worker = finish_crawl(procs, project, master, relay.address, key, out, site,
                              "--log-level", "WARNING")
    finally:
        relay.close()
    assert relay.injected.is_set()
    assert not marker.exists()
    assert "lost the master" in worker.stderr, worker.describe()
    said = {"code": ["sent what the protocol does not allow", "posix.system"]}.get(kind, [])
    for text in said:  # what a code-running reply is logged as
        assert text in worker.stderr, worker.describe()


# -- the master's own errors ------------------------------------------------------------------
def test_what_the_manager_protocol_sends_names_no_global(site, project, procs, tmp_path):
    """Every reply a real master sends in a crawl is plain data: the workers unpickle
    with wire.loads (no global allowed) and the crawl finishes (test_e2e runs many more)."""
    assert wire.ALLOWED_GLOBALS == frozenset()
    master, address, key, out = start_master(procs, project, site, tmp_path)
    worker = finish_crawl(procs, project, master, address, key, out, site)
    assert "protocol does not allow" not in worker.stderr + master.stderr
    assert_each_page_fetched_once(site)


def test_wire_loads_refuses_any_global_and_takes_plain_data(tmp_path):
    data = {"a": [1, 2.5, None, True, b"x", ("t",), {"s"}, frozenset({1})], "b": bytearray(b"y")}
    assert wire.loads(pickle.dumps(data, protocol=5)) == data
    for obj in (RunsCode(tmp_path / "ran"), sqlite3.OperationalError("x"), 1j,
                ValueError("x"), range(3)):
        with pytest.raises(wire.ProtocolError, match="names"):
            wire.loads(pickle.dumps(obj))
    assert not (tmp_path / "ran").exists()
    with pytest.raises(wire.ProtocolError, match="not a valid pickle"):
        wire.loads(b"\x80\x04garbage")


def test_a_master_methods_own_exception_reaches_the_worker_as_text(caplog):
    """multiprocessing would pickle the exception itself (a class the worker would have to
    import, and that killed workers: sqlite3.OperationalError from a full disk); the master
    sends its text, which the worker gets as RemoteError, one of manager.LOST."""
    class Failing:
        def put(self, worker, results):
            raise sqlite3.OperationalError("database or disk is full")

    class Nothing:
        def __getattr__(self, name):
            raise AttributeError(name)

    objects = {"url_queue": Nothing(), "result_queue": Failing(), "control": Nothing(),
               "seen": {}, "crawl": Nothing()}
    key = b"k" * 32
    address = manager.serve(objects, ("127.0.0.1", 0), key)
    proxies = manager.connect(address, key)
    with pytest.raises(RemoteError, match="sqlite3.OperationalError: database or disk is full"):
        proxies["result_queue"].put("w", [])
    assert issubclass(RemoteError, manager.LOST)
    assert "a worker's call failed on the master" in caplog.text
