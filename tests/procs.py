"""Real subprocesses for the end-to-end tests: masters, workers, the demo.

Every process is started in a session (and so a process group) of its own, with stdout and
stderr captured to files. A ProcessRegistry remembers each one and, at teardown, SIGKILLs
the whole group of every process still alive (a master's local workers live in its group).
Every wait here has a deadline and fails with the captured output when it runs out.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent.parent
_DROP_ENV = ("CRAWLER_AUTHKEY_FILE", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "PYTHONPATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], object], timeout: float, what: str,
             interval: float = 0.05, describe: Callable[[], str] | None = None):
    """Poll condition until it returns something truthy; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def base_env(tmpdir: Path | None = None) -> dict[str, str]:
    """The environment for a child: no key file or proxies from outside, unbuffered output,
    and TMPDIR pointed at a folder of the test's own (so temporary keys can be checked)."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


class Proc:
    """One started process, its captured output and its process group."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], logdir: Path,
                 name: str) -> None:
        self.args, self.cwd, self.name = args, cwd, name
        self.stdout_path = logdir / f"{name}.out"
        self.stderr_path = logdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=err, start_new_session=True)
        self.pid = self.popen.pid
        self.pgid = self.pid  # start_new_session: the child leads a group of its own

    # -- output ----------------------------------------------------------------
    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self, tail: int = 3000) -> str:
        return (f"--- {self.name}: {' '.join(self.args)} (cwd {self.cwd}), "
                f"returncode {self.popen.poll()}\n--- stdout:\n{self.stdout[-tail:]}"
                f"\n--- stderr:\n{self.stderr[-tail:]}")

    # -- lifecycle --------------------------------------------------------------
    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        """The exit status; AssertionError (with the output) if still running after timeout."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout:.0f} s\n"
                                 f"{self.describe()}") from None

    def send(self, sig: int, group: bool = False) -> None:
        """Send a signal to the process (or to its whole group, as a terminal's Ctrl-C)."""
        if group:
            os.killpg(self.pgid, sig)
        else:
            self.popen.send_signal(sig)

    def group_alive(self) -> bool:
        """True while any process of this process's group still exists."""
        self.popen.poll()  # reap the leader if it is done
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def kill_group(self) -> None:
        """SIGKILL every process left in the group, then reap the leader. Safe to repeat:
        Linux does not reuse a pid while it still names a process group."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def wait_output(self, needle: str, timeout: float, stream: str = "stdout") -> str:
        """Wait until the text appears in stdout (or stderr); return that stream."""
        def found():
            text = self.stdout if stream == "stdout" else self.stderr
            return text if needle in text else None
        return wait_for(found, timeout, f"{needle!r} in {self.name}'s {stream}",
                        describe=self.describe)


class ProcessRegistry:
    """Starts processes for one test and kills what is left of them at the end."""

    def __init__(self, logdir: Path, tmpdir: Path) -> None:
        self.logdir, self.tmpdir = logdir, tmpdir
        self.procs: list[Proc] = []
        logdir.mkdir(parents=True, exist_ok=True)
        tmpdir.mkdir(parents=True, exist_ok=True)

    def start(self, args: list[str], cwd: Path, name: str,
              env: dict[str, str] | None = None) -> Proc:
        taken = {p.name for p in self.procs}
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}-{n}"
        proc = Proc(args, cwd, env or base_env(self.tmpdir), self.logdir, unique)
        self.procs.append(proc)
        return proc

    def master(self, args: Iterable[str], cwd: Path, name: str = "master",
               env: dict[str, str] | None = None) -> Proc:
        return self.start([sys.executable, "-m", "crawler.master", *map(str, args)], cwd,
                          name, env)

    def worker(self, address: str, key_file: Path | str, args: Iterable[str] = (),
               cwd: Path | None = None, name: str = "worker", max_wait: float = 30.0,
               env: dict[str, str] | None = None) -> Proc:
        return self.start([sys.executable, "-m", "crawler.worker", address, "--authkey-file",
                           str(key_file), "--max-wait", str(max_wait), *map(str, args)],
                          cwd, name, env)

    def module(self, module: str, args: Iterable[str], cwd: Path, name: str,
               env: dict[str, str] | None = None) -> Proc:
        return self.start([sys.executable, "-m", module, *map(str, args)], cwd, name, env)

    def cleanup(self) -> list[str]:
        """SIGKILL every group still alive; return the names of those that were."""
        left = []
        for proc in self.procs:
            if proc.group_alive():
                left.append(proc.name)
            proc.kill_group()
        return left


# -- test data ------------------------------------------------------------------------------
QUIET = ["-s", "LOG_LEVEL=WARNING"]


def site_urls(server, paths=None) -> set[str]:
    """The absolute URLs of a served site's pages (all of them, or of the given paths)."""
    base = server.url.rstrip("/")
    return {base + p for p in (server.site.paths() if paths is None else paths)}


def write_seeds(folder: Path, *lines: str, name: str = "seeds.txt") -> Path:
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def hold_first_page(site, timeout: float = 30.0) -> threading.Event:
    """Make the site's first page wait (bounded) until the returned event is set: the
    crawl cannot end before then, so workers started one after another all take part
    (otherwise the first may finish it before the next is even started)."""
    gate = threading.Event()
    site.extra["/"] = lambda: (gate.wait(timeout), site.site.render("/"))[1]
    return gate


def write_key(path: Path, mode: int = 0o600, key: str | None = None) -> Path:
    """A key file of 64 hex characters with the given mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write((key or os.urandom(32).hex()) + "\n")
    os.chmod(path, mode)
    return path


# -- reading outputs ----------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict]:
    """Every line of a JSON-lines file, parsed; AssertionError naming a bad line."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path}:{number}: not JSON ({exc}): {line[:200]!r}") from None
    return items


def terminal_lines(text: str) -> list[str]:
    """What stays on a terminal: text replayed with newlines, and carriage return + erase-line
    (the live status line's redraw) clearing the current line; the last item is the line
    the cursor is on."""
    lines, current = [], ""
    for token in re.split(r"(\r\x1b\[K|\n)", text):
        if token == "\n":
            lines.append(current)
            current = ""
        elif token == "\r\x1b[K":
            current = ""
        else:
            current += token
    return lines + [current]


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0
