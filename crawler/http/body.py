"""Content-Encoding decoding with a bound on memory: gzip, deflate, and br when available.

The body arrives in pieces and is decoded here, incrementally, with an output bound per step,
so the decoded bytes are capped like the raw ones and a gzip bomb costs at most about the cap
of memory. br is decoded only when a brotli package whose decompressor can bound its output
is installed (brotli >= 1.2, or brotlicffi); ACCEPT_ENCODING offers only what we decode.
"""
from __future__ import annotations

import logging
import zlib

from .errors import FetchError

log = logging.getLogger(__name__)
_MAX_CODINGS = 4  # stacked Content-Encodings decoded at most

try:  # brotli is optional; used only if its decompressor can bound its output
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import brotlicffi as _brotli  # type: ignore[import-not-found]
    except ImportError:
        _brotli = None


def _bounded_brotli() -> bool:
    if _brotli is None:
        return False
    try:
        _brotli.Decompressor().process(b"", output_buffer_limit=1)
    except Exception:  # older releases have no output_buffer_limit: unbounded, so unused
        return False
    return True


BROTLI = _bounded_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if BROTLI else "gzip, deflate"


class _Zlib:
    """gzip (several members too) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._tail = b""  # input left over when the output limit was reached
        self._first: bytes | None = None if gzip else b""  # deflate: input until it decodes
        self._members = 1  # gzip members seen
        self._ignore_rest = False
        self.pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._ignore_rest:
            return b""
        if self._tail:
            data = self._tail + data
        if self._first is not None:
            self._first += data
        out = self._decompress(data, limit)
        if self._ignore_rest:
            self._tail, self.pending = b"", False
            return b""
        if out:
            self._first = None
        self._tail = self._d.unconsumed_tail
        if self.gzip and self._d.eof and self._d.unused_data and not self._tail:
            self._tail = self._d.unused_data  # another gzip member follows
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._members += 1
        self.pending = bool(self._tail) or len(out) >= limit
        return out

    def _decompress(self, data: bytes, limit: int) -> bytes:
        try:
            return self._d.decompress(data, limit)
        except zlib.error:
            if self._first is not None:  # deflate without the zlib wrapper: start over, raw
                data, self._first = self._first, None
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._d.decompress(data, limit)
            if self._members > 1:  # bytes after a complete gzip member that are not one
                self._ignore_rest = True
                return b""
            raise


class _Brotli:
    """br, through a decompressor that stops at an output limit (brotli >= 1.2)."""

    def __init__(self) -> None:
        self._d = _brotli.Decompressor()
        self._input = b""
        self.pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        self._input += data
        if not self._d.can_accept_more_data():  # output left over: drain it first
            out = self._d.process(b"", output_buffer_limit=limit)
        elif self._input:
            out = self._d.process(self._input, output_buffer_limit=limit)
            self._input = b""
        else:
            out = b""
        self.pending = bool(self._input) or not self._d.can_accept_more_data()
        return out


class BodyDecoder:
    """Content-Encoding decoding with at most cap decoded bytes ever held.

    Each stage is asked for no more output than the room left under the cap (plus one byte, to
    notice going over), so one compressed chunk can never expand into more than that.
    Unknown codings are left as they are (the body is kept as sent)."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        self.cap = cap
        self.body = bytearray()
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        known = {"gzip": True, "x-gzip": True, "deflate": True, "br": BROTLI}
        if len(codings) > _MAX_CODINGS:
            raise FetchError("bad_encoding", f"{len(codings)} stacked Content-Encodings")
        if not all(known.get(c) for c in codings):
            if codings:
                log.debug("Content-Encoding %r not decoded", content_encoding)
            codings = []
        # decoding undoes the codings in the reverse order of their application
        self.stages = [_Brotli() if c == "br" else _Zlib(gzip=c != "deflate")
                       for c in reversed(codings)]

    def feed(self, data: bytes) -> None:
        try:
            self._pump(0, data)
        except FetchError:
            raise
        except Exception as exc:  # zlib.error, brotli.error
            raise FetchError("bad_encoding", f"cannot decode the body: {exc}") from None

    def _pump(self, index: int, data: bytes) -> None:
        if index == len(self.stages):
            self.body += data
            if len(self.body) > self.cap:
                raise FetchError("too_large", f"decoded body over DOWNLOAD_MAXSIZE {self.cap} "
                                 "bytes")
            return
        stage = self.stages[index]
        out = stage.feed(data, self.cap + 1 - len(self.body))
        while True:
            if out:
                self._pump(index + 1, out)
            if not stage.pending:
                return
            out = stage.feed(b"", self.cap + 1 - len(self.body))
            if not out and stage.pending:
                raise FetchError("bad_encoding", "the decoder stopped making progress")

    def result(self) -> bytes:
        return bytes(self.body)
