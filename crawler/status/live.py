"""A live status line at the bottom of a terminal, redrawn in place with plain `\\r` and
ANSI erase-line. Every other write to the terminal (log records, prints, the local workers'
output, relayed through pipes) passes through here: the line is erased, the text written,
the line drawn again under it, so no log line is ever cut or overwritten."""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import sys
import threading
from typing import IO, Any

_ERASE = "\r\x1b[K"


def wanted(stream: IO[str]) -> bool:
    """A live line suits this stream: an interactive terminal that understands ANSI."""
    return stream.isatty() and os.environ.get("TERM", "") not in ("", "dumb")


class LiveLine:
    """The line and the terminal stream it lives on."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lock = threading.RLock()
        self.text = ""
        self._shown = False
        self._mid_line = False  # something wrote part of a line: draw after its end
        self._saved: list[tuple[Any, str, Any]] = []

    def show(self, text: str) -> None:
        """Replace the line's text."""
        width = shutil.get_terminal_size((100, 24)).columns - 1
        with self.lock:
            self.text = text if len(text) <= width else text[:max(0, width - 1)] + "…"
            if not self._mid_line:
                self._erase()
                self._draw()

    def write(self, data: str) -> None:
        """Write other text above the line."""
        if not data:
            return
        with self.lock:
            self._erase()
            self.stream.write(data)
            self._mid_line = not data.endswith("\n")
            if not self._mid_line:
                self._draw()
            self.stream.flush()

    def _erase(self) -> None:
        if self._shown:
            self.stream.write(_ERASE)
            self._shown = False

    def _draw(self) -> None:
        if self.text:
            self.stream.write(self.text)
            self._shown = True
        self.stream.flush()

    def capture(self) -> None:
        """Send sys.stdout/sys.stderr (when they are this terminal) and the logging handlers
        that write to them through the line."""
        through = _Through(self)
        atexit.register(self.close)  # however the process ends, the line goes
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is self.stream or _same_terminal(stream, self.stream):
                self._saved.append((sys, name, stream))
                setattr(sys, name, through)
        originals = {id(s) for _, _, s in self._saved}
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in originals:
                self._saved.append((handler, "stream", handler.stream))
                handler.setStream(through)

    def relay(self, pipe: IO[bytes]) -> threading.Thread:
        """Copy a child's output, line by line, through the line (on a daemon thread)."""
        def copy() -> None:
            for raw in iter(pipe.readline, b""):
                self.write(raw.decode(errors="replace"))
            pipe.close()
        thread = threading.Thread(target=copy, name="live-relay", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Erase the line and give the streams back."""
        with self.lock:
            for owner, attr, stream in reversed(self._saved):
                if isinstance(owner, logging.StreamHandler):
                    owner.setStream(stream)
                else:
                    setattr(owner, attr, stream)
            self._saved.clear()
            self.text = ""
            self._erase()
            self.stream.flush()


class _Through:
    """A file-like object whose writes go through a LiveLine."""

    def __init__(self, live: LiveLine) -> None:
        self._live = live

    def write(self, data: str) -> int:
        self._live.write(data)
        return len(data)

    def flush(self) -> None:
        self._live.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live.stream, name)


def _same_terminal(a: IO[str], b: IO[str]) -> bool:
    try:
        return a.isatty() and os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (OSError, ValueError, AttributeError):
        return False
