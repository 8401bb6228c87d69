"""What the frontier has seen: each admitted fingerprint and the state it is in."""
from __future__ import annotations


class SeenDict(dict):
    """Fingerprint -> state; shared with workers as a registered proxy dict."""

    def unseen(self, fingerprints: list[bytes]) -> list[bytes]:
        """The fingerprints not yet known, in one call (workers pre-filter with it)."""
        return [fp for fp in fingerprints if fp not in self]
