"""The frontier: what is fetched next, by whom and when, and what each URL became.

`Frontier` is the embedded (in-process) implementation; the journal keeps its changes for
resume; robots and throttle are the politeness rules it applies.
"""
from .embedded import Frontier
from .seen import DONE, FAILED, LEASED, QUEUED

__all__ = ["DONE", "FAILED", "LEASED", "QUEUED", "Frontier"]
