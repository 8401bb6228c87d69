"""The master's local workers: child processes started with it, watched while it runs, and
waited for (bounded) at the end.

Starting `python -m crawler.worker` costs each worker a Python and its imports (~0.3 s of
CPU, a third of a short crawl). So the master forks its local workers early, while it still
has a single thread, and has imported what a worker needs: each fork waits for its
command line (the master's address is not known yet), then runs crawler.worker as
`python -m crawler.worker` would. A master that already runs other threads (the demo, a
program embedding it) starts fresh processes instead: a fork would copy locks those threads
may hold.
"""
from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import IO, Any

from .errors import CrawlerError

log = logging.getLogger(__name__)


class Forked:
    """A forked child, watched like a subprocess.Popen (pid, returncode, poll, wait, kill)."""

    def __init__(self, pid: int, command: int, stderr: IO[bytes] | None) -> None:
        self.pid, self.command, self.stderr = pid, command, stderr
        self.returncode: int | None = None

    def start(self, args: list[str]) -> None:
        """Send the child its worker command line; it starts."""
        try:
            with os.fdopen(self.command, "wb") as pipe:
                pipe.write(json.dumps(args).encode())
        except BrokenPipeError:  # it died waiting: check() reports its exit
            log.debug("local worker pid %d exited before it started", self.pid)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


class LocalWorkers:
    """Worker processes of this master: forks made by prefork, else `python -m
    crawler.worker` processes."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen | Forked] = []
        self.exited: set[int] = set()  # pids seen to have exited
        self.waiting: list[Forked] = []  # forks not yet given their command line

    def __len__(self) -> int:
        return len(self.children)

    def prefork(self, count: int, relay: bool) -> None:
        """Fork `count` workers-to-be now, if this process runs no other thread (else spawn
        starts fresh processes); `relay`: their stderr goes through a pipe (a live screen)."""
        if count < 1 or threading.active_count() > 1 or not hasattr(os, "fork"):
            return
        # What only workers use (requests ...) is imported once, here, not by each fork.
        importlib.import_module("crawler.worker")
        sys.stdout.flush()  # else what is buffered would be written again by each child
        sys.stderr.flush()
        for _ in range(count):
            command_r, command_w = os.pipe()
            err_r, err_w = os.pipe() if relay else (None, None)
            pid = os.fork()
            if pid == 0:
                _child(command_r, err_w, [command_w, *(c.command for c in self.waiting)]
                       + ([err_r] if relay else []))
            os.close(command_r)
            if relay:
                os.close(err_w)
            self.waiting.append(Forked(pid, command_w,
                                       os.fdopen(err_r, "rb") if relay else None))

    def spawn(self, count: int, args: list[str], screen: Any = None) -> None:
        """Start `count` workers with these arguments; with a live screen, their log
        lines go above its line, not through it."""
        args = [*args, "--parent", str(os.getpid())]
        for _ in range(count):
            if self.waiting:
                child = self.waiting.pop(0)
                child.start(args)
            else:
                child = subprocess.Popen([sys.executable, "-m", "crawler.worker", *args],
                                         stderr=subprocess.PIPE if screen else None)
            self.children.append(child)
            if screen and child.stderr is not None:
                screen.relay(child.stderr)

    def check(self) -> None:
        """Log each worker that exits; CrawlerError when all have died (not one exited 0,
        as workers do when told the crawl is over): no one would crawl on."""
        for child in self.children:
            if child.pid not in self.exited and child.poll() is not None:
                self.exited.add(child.pid)
                log.warning("local worker pid %d exited with status %d", child.pid,
                            child.returncode)
        if self.children and len(self.exited) == len(self.children) and \
                all(child.returncode != 0 for child in self.children):
            statuses = ", ".join(str(child.returncode) for child in self.children)
            raise CrawlerError(f"all {len(self.children)} local workers died (exit statuses "
                               f"{statuses}); their errors are above")

    def wait(self, deadline: float) -> None:
        """Wait for each to exit until `deadline` (monotonic); terminate those still up."""
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait(5)

    def kill(self) -> None:
        for child in self.children:
            child.kill()


def _child(command: int, stderr: int | None, inherited: list[int]) -> None:
    """A fork's life: wait for the command line, run the worker, exit (never return: the
    master's frames above must not run again here)."""
    status = 1
    try:
        for fd in inherited:  # the other forks' pipes: their ends must close with the master
            os.close(fd)
        if stderr is not None:
            os.dup2(stderr, 2)
            os.close(stderr)
        with os.fdopen(command, "rb") as pipe:
            data = pipe.read()
        status = _run_worker(json.loads(data)) if data else 0  # no line: the master is gone
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # noqa: BLE001 - reported, and the child must reach os._exit
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _run_worker(args: list[str]) -> int:
    """Run crawler.worker as `python -m crawler.worker ARGS` does; its exit status."""
    gc.freeze()  # what the master made stays put: the collector need not walk (and copy) it
    root = logging.getLogger()
    for handler in root.handlers[:]:  # the worker configures its own (basicConfig)
        root.removeHandler(handler)
    sys.argv = [sys.argv[0], *args]
    sys.modules.pop("crawler.worker", None)  # runpy runs it afresh as __main__, as -m does
    try:
        runpy.run_module("crawler.worker", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0
