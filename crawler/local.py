"""The master's local workers: child processes started with it, watched while it runs, and
waited for (bounded) at the end."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from typing import Any

from .errors import CrawlerError

log = logging.getLogger(__name__)


class LocalWorkers:
    """`python -m crawler.worker` processes of this master."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []
        self.exited: set[int] = set()  # pids seen to have exited

    def __len__(self) -> int:
        return len(self.children)

    def spawn(self, count: int, args: list[str], screen: Any = None) -> None:
        """Start `count` workers with these arguments; with a live screen, their log
        lines go above its line, not through it."""
        for _ in range(count):
            child = subprocess.Popen(
                [sys.executable, "-m", "crawler.worker", *args, "--parent", str(os.getpid())],
                stderr=subprocess.PIPE if screen else None)
            self.children.append(child)
            if screen:
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
