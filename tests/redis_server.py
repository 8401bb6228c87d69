"""A real redis-server for tests: its own folder, a free loopback port, killed by pid."""
from __future__ import annotations

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
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.skip("SKIPPED LOUDLY: the redis package is missing (pip install -e '.[test]')")
    return RedisServer(folder, *options).start()
