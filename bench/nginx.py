"""nginx as a child process for the benchmarks: a generated config, `daemon off`, its own
session, stopped by its pid at the end. Also `wait_http`, which any bench server uses to
know it is up. Only loopback addresses are ever used."""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time

from measure import process_tree

MAIN_CONF = """
worker_processes {processes};
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
{http}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary, on PATH or where Debian and source builds put it."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)),
        None)


class Nginx:
    """nginx running `http_conf` (the inside of its http block) from a folder of its own.

    Raises FileNotFoundError when nginx is not installed. Started by root, nginx's worker
    processes run as an unprivileged user: whatever they serve must be world-readable."""

    def __init__(self, folder: str, http_conf: str, processes: int = 2) -> None:
        self.binary = find_nginx()
        if self.binary is None:
            raise FileNotFoundError("nginx")
        self.dir = folder
        os.makedirs(os.path.join(folder, "temp"), exist_ok=True)
        self.conf = os.path.join(folder, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(MAIN_CONF.format(processes=processes, dir=folder, http=http_conf))
        version = subprocess.run([self.binary, "-v"], capture_output=True, text=True)
        self.version = version.stderr.strip().split("/")[-1] or "?"
        self.description = f"nginx {self.version} ({processes} worker processes)"
        self._log = open(os.path.join(folder, "stderr.log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary, "-p", folder, "-c", self.conf, "-e", os.path.join(folder, "error.log")],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, host: str, port: int, path: str = "/", timeout: float = 10.0) -> None:
        """Until host:port answers path with 200; on failure stop nginx, show its errors."""
        try:
            wait_http(port, timeout, self.proc, host=host, path=path)
        except Exception:
            self.close()
            for name in ("stderr.log", "error.log"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    sys.stderr.write(f.read())
            raise

    @property
    def pids(self) -> list[int]:
        """The nginx master and its workers (for their CPU use)."""
        return process_tree(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()   # nginx: fast shutdown of master and workers
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)   # its own group: nginx and workers
                self.proc.wait(5)
        self._log.close()


def wait_http(port: int, timeout: float, proc: subprocess.Popen | None = None,
              host: str = "127.0.0.1", path: str = "/") -> None:
    """Poll GET path on host:port until it answers 200; raise when it does not in time, when
    it answers something else, or when proc (the server) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
            raise RuntimeError(f"server answered {path} with {r.status}")
        except (OSError, http.client.HTTPException):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no server on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)
