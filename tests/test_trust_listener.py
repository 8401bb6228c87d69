"""The master's listener against silent and crowding peers: the challenge and idle
connections time out, connections per address are capped (workers from other addresses
are still served), and TCP keepalive is on. Real masters and workers; the silent peers
come from 127.0.0.2 (loopback, another address)."""
from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from procs import QUIET, free_port, read_jsonl, write_key, write_seeds
from rogue import RawPeer, read_all
from test_e2e import assert_one_item_per_page, listening_address, summary_line

CHALLENGE = 4 + 11 + 20  # the challenge frame's bytes


def start_master(procs, project, site, tmp_path, *settings):
    key = write_key(tmp_path / "key")
    out = project / "out.jsonl"
    extra = [arg for name in settings for arg in ("-s", name)]
    master = procs.master([write_seeds(project, site.url), "--bind", f"127.0.0.1:{free_port()}",
                           "--authkey-file", key, "--workers", 0, "-o", out, *extra, *QUIET],
                          project)
    host, port = listening_address(master).rsplit(":", 1)
    return master, (host, int(port)), key, out


def silent(address, source="127.0.0.2") -> socket.socket:
    sock = socket.create_connection(address, timeout=10, source_address=(source, 0))
    return sock


def still_open(sock: socket.socket) -> bool:
    """Nothing to read and no end of file: the master still holds it."""
    sock.setblocking(False)  # a socket with a timeout would wait for data first
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:  # nothing to read now
        return True
    except ConnectionResetError:
        return False


def test_a_silent_connection_is_closed_after_the_challenge_timeout(site, project, procs,
                                                                   tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path,
                                             "LISTENER_CHALLENGE_TIMEOUT=1")
    quiet = silent(address)
    assert quiet.recv(CHALLENGE)[4:15] == b"#CHALLENGE#"
    assert read_all(quiet, timeout=15) == b""  # closed by the master, not by us
    quiet.close()
    master.wait_output("no TLS handshake and authkey challenge within 1 s", 10, "stderr")


def test_connections_per_address_are_capped_and_other_workers_served(site, project, procs,
                                                                     tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path,
                                             "LISTENER_MAX_PER_ADDRESS=8",
                                             "LISTENER_CHALLENGE_TIMEOUT=120")
    held = [silent(address) for _ in range(8)]
    for sock in held:
        assert sock.recv(CHALLENGE)[4:15] == b"#CHALLENGE#"
    for _ in range(12):  # beyond the cap: closed as they come, without a challenge
        extra = silent(address)
        assert read_all(extra) == b""
        extra.close()
    master.wait_output("more than 8 connections from 127.0.0.2", 10, "stderr")
    assert all(still_open(sock) for sock in held)  # held (for 120 s) while the worker works
    worker = procs.worker(f"{address[0]}:{address[1]}", key, ["-c", 4], cwd=project)
    for proc in (worker, master):
        assert proc.wait(30) == 0, proc.describe()
    assert summary_line(master).group(1, 3) == ("finished", "0"), master.describe()
    assert_one_item_per_page(read_jsonl(out), site)
    for sock in held:
        sock.close()


def test_an_idle_authenticated_connection_is_closed(site, project, procs, tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path,
                                             "LISTENER_IDLE_TIMEOUT=1")
    peer = RawPeer(address)
    peer.authenticate(key.read_bytes().strip())
    assert peer.call((None, "accept_connection", ("idle",), {})) == ("#RETURN", None)
    assert read_all(peer.sock, timeout=15) == b""
    peer.close()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_accepted_connections_have_tcp_keepalive(site, project, procs, tmp_path):
    master, address, key, out = start_master(procs, project, site, tmp_path)
    quiet = silent(address)
    assert quiet.recv(CHALLENGE)[4:15] == b"#CHALLENGE#"
    local_port = quiet.getsockname()[1]
    listing = subprocess.run(["ss", "-tnoH", "state", "established",
                              f"( sport = :{address[1]} and dport = :{local_port} )"],
                             capture_output=True, text=True, timeout=10).stdout
    assert "timer:(keepalive" in listing, listing
    quiet.close()
