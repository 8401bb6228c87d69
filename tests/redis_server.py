"""A real redis-server for tests: its own folder, a free loopback port, killed by pid."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from procs import free_port

REDIS_SERVER = shutil.which("redis-server")


class RedisServer:
    """redis-server on 127.0.0.1 with its folder; restartable on the same port and folder."""

    def __init__(self, folder: Path, *options: str, port: int | None = None) -> None:
        self.folder, self.options = folder, list(options)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--save", "", "--appendonly", "no",
                "--logfile", "redis.log", *self.options]
        self.proc = subprocess.Popen(args, cwd=self.folder, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        import redis
        client, deadline = self.client(), time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.AuthenticationError:
                return self  # up, and wants a password
            except redis.ResponseError as exc:
                if "NOAUTH" in str(exc):
                    return self
                raise
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "redis.log")
                    raise AssertionError("redis-server did not start: " +
                                         (log.read_text() if log.exists() else "")) from None
                time.sleep(0.02)

    def client(self, **kwargs):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_or_skip(folder: Path, *options: str) -> RedisServer:
    """A started server; a loud skip when redis-server or the redis package is missing."""
    if REDIS_SERVER is None:
        pytest.skip("SKIPPED LOUDLY: redis-server is not installed (apt-get install "
                    "redis-server; .ci/run does)")
    if importlib.util.find_spec("redis") is None:
        pytest.skip("SKIPPED LOUDLY: the redis package is missing (pip install -e '.[test]')")
    return RedisServer(folder, *options).start()


def _cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is a port too, and free."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port
    raise AssertionError("no free port below 55536 for a cluster node")


def _free(port: int) -> bool:
    import socket
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class RedisClusterNodes:
    """Three redis-server nodes with --cluster-enabled on free loopback ports, joined with
    redis-cli --cluster create (no replicas)."""

    def __init__(self, folder: Path) -> None:
        self.nodes = [RedisServer(folder / f"node{i}", "--cluster-enabled", "yes",
                                  "--cluster-config-file", "nodes.conf", port=_cluster_port())
                      for i in range(3)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> "RedisClusterNodes":
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        made = subprocess.run([cli, "--cluster", "create",
                               *(f"127.0.0.1:{n.port}" for n in self.nodes),
                               "--cluster-replicas", "0", "--cluster-yes"],
                              capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed: {made.stdout}"
                                 f"{made.stderr}")
        client, deadline = self.nodes[0].client(), time.monotonic() + 20
        while client.cluster("info").get("cluster_state") != "ok":
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not reach state ok")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()


def cluster_or_skip(folder: Path) -> RedisClusterNodes:
    start_or_skip(folder / "probe").kill()  # skips loudly without redis-server or redis-py
    if shutil.which("redis-cli") is None:
        pytest.skip("SKIPPED LOUDLY: redis-cli is missing (apt-get install redis-tools)")
    nodes = RedisClusterNodes(folder)
    try:
        return nodes.start()
    except BaseException:
        nodes.kill()
        raise
