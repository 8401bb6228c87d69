"""The frontier: what is fetched next, by whom and when, and what each URL became.

`base.FrontierBackend` is the interface the scheduler uses; `Frontier` is the embedded
(in-process) implementation and `redis.RedisFrontier` the one in Redis (Lua steps in
redis_scripts/); the journal keeps the embedded one's changes for resume; robots and
throttle are the politeness rules both apply.
"""
from .embedded import DONE, FAILED, LEASED, QUEUED, Frontier

__all__ = ["DONE", "FAILED", "LEASED", "QUEUED", "Frontier"]
