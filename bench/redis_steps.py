#!/usr/bin/env python
"""The Redis frontier's Lua steps alone: redis-server CPU per page settled, and per command.

    python bench/redis_steps.py [--pages 20000] [--links 20] [--batch 64] [--hosts 1000]
                                [--shards 1] [--minimal] [--json out.json]

Starts a redis-server of its own (free loopback port, no persistence), and in this one
process drives a RedisFrontier as --batch synthetic workers' worth of pages would: lease
--batch tasks, settle them done, each with one item and --links new links on random hosts
of --hosts (URLs and fingerprints made before the clock starts). Reported: redis-server's
CPU seconds per page (from /proc, so what the Lua steps cost, not this client), the
commands run inside the steps per page (INFO commandstats), and with --minimal the same
pages settled by a script doing only the least any frontier must: one SMISMEMBER and one
SADD of the batch's fingerprints and one RPUSH per host of its new URLs (the floor of a
settle step on this machine).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from hashlib import blake2b

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from crawler.frontier.redis import RedisFrontier  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
MINIMAL = """
local fps, byhost = {}, {}
for i = 1, #ARGV, 3 do fps[#fps + 1] = ARGV[i] end
local found = redis.call('SMISMEMBER', KEYS[1], unpack(fps))
local fresh = {}
for i = 1, #ARGV, 3 do
  local k = (i + 2) / 3
  if found[k] == 0 then
    fresh[#fresh + 1] = ARGV[i]
    local h = ARGV[i + 1]
    local l = byhost[h]
    if l == nil then l = {}; byhost[h] = l end
    l[#l + 1] = ARGV[i + 2]
  end
end
if #fresh > 0 then redis.call('SADD', KEYS[1], unpack(fresh)) end
for h, l in pairs(byhost) do redis.call('RPUSH', KEYS[1] .. ':q:' .. h, unpack(l)) end
return #fresh
"""


def cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_redis(folder: str) -> tuple[subprocess.Popen, int]:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind",
                             "127.0.0.1", "--dir", folder, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)


def links_pool(n: int, hosts: int, rng: random.Random) -> list[dict]:
    out = []
    for i in range(n):
        host = f"h{rng.randrange(hosts)}.invalid"
        url = f"http://{host}/p{i}"
        out.append({"url": url, "host": host, "depth": 1,
                    "fp": blake2b(url.encode(), digest_size=16).digest()})
    return out


def commandstats(client) -> dict[str, dict]:
    return {k.removeprefix("cmdstat_"): v for k, v in client.info("commandstats").items()}


def run_frontier(client, args, pool) -> dict:
    f = RedisFrontier(client, "bench", shards=args.shards, per_host=1000)
    seeds = [{"url": f"http://h{i}.invalid/", "host": f"h{i}.invalid", "depth": 0,
              "fp": f"seed{i}".encode()} for i in range(args.hosts)]
    f.admit(seeds)
    return drive(client, args, pool, lambda: f.lease("w", args.batch)[0],
                 lambda leased, links: f.settle(
                     [{"lease": lid, "outcome": "done", "status": 200,
                       "items": [{"url": t["url"]}], "dropped": {},
                       "requests": links[i * args.links:(i + 1) * args.links]}
                      for i, (lid, t) in enumerate(leased)]))


def run_minimal(client, args, pool) -> dict:
    sha = client.script_load(MINIMAL)

    def settle(leased, links):
        flat = []
        for t in links:
            flat += [t["fp"], t["host"], t["url"]]
        client.evalsha(sha, 1, "min:seen", *flat)
    return drive(client, args, pool, lambda: [None] * args.batch, settle)


def drive(client, args, pool, lease, settle) -> dict:
    pid = int(client.info("server")["process_id"])
    client.config_resetstat()
    pages, used, c0, t0, m0 = 0, 0, cpu(pid), time.perf_counter(), time.process_time()
    while pages < args.pages:
        leased = lease()
        if not leased:
            raise RuntimeError("nothing to lease")
        need = len(leased) * args.links
        settle(leased, pool[used:used + need])
        used += need
        pages += len(leased)
    c1, t1, m1 = cpu(pid), time.perf_counter(), time.process_time()
    stats = commandstats(client)
    return {"pages": pages, "redis_cpu_ms_per_page": round(1000 * (c1 - c0) / pages, 4),
            "us_per_new_url": round(1e6 * (c1 - c0) / max(1, used), 2),
            "client_cpu_ms_per_page": round(1000 * (m1 - m0) / pages, 4),
            "wall_s": round(t1 - t0, 2), "load": os.getloadavg()[0],
            "calls_per_page": {k: round(v["calls"] / pages, 2) for k, v in
                               sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:args.top]},
            "usec_per_page": {k: round(v["usec"] / pages, 1) for k, v in
                              sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:args.top]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=20000)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--minimal", action="store_true")
    p.add_argument("--top", type=int, default=12, help="commands listed")
    p.add_argument("--json")
    args = p.parse_args(argv)
    import redis
    pool = links_pool((args.pages + args.batch) * args.links, args.hosts, random.Random(1))
    folder = tempfile.mkdtemp(prefix="redis-steps-")
    proc, port = start_redis(folder)
    try:
        client = redis.Redis(port=port)
        out = {"frontier": run_frontier(client, args, pool)}
        if args.minimal:
            client.flushall()
            out["minimal"] = run_minimal(client, args, pool)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
