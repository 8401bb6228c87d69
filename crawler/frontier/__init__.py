"""The frontier: what is fetched next, by whom and when, and what each URL became.

`Frontier` is the embedded (in-process) implementation, made of hosts (a host's queue and
politeness clock), leases, seen (the fingerprint store) and spill (queued URLs past the memory
bound, on disk); the journal keeps its changes for resume; robots and throttle are the
politeness rules it applies.
"""
from .embedded import Frontier
from .seen import DONE, FAILED, LEASED, QUEUED

__all__ = ["DONE", "FAILED", "LEASED", "QUEUED", "Frontier"]
