"""Seeing the crawl: one snapshot of the master's state, rendered as a progress line, a live
terminal line, /stats.json, /metrics, the status page and JOBDIR/stats.json.

`snapshot` builds the plain dict, `history` keeps the time series, `monitor` samples both on a
thread of the master's own; the other modules only render what they are given.
"""
