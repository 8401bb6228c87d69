#!/usr/bin/env python
"""How long a master takes to start listening with a big seeds file, and its memory then.

    python bench/seeds_start.py [--seeds 2000000] [--hosts 1000] [--jobdir]

Writes --seeds URLs over --hosts loopback host names (nothing is fetched: the master runs with
--workers 0), starts `python -m crawler.master` on it, and reports the seconds until it prints
`master listening` and its peak RSS (VmHWM) at that moment; then stops it with SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2_000_000)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--jobdir", action="store_true", help="with a JOBDIR (a journal)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as folder:
        seeds = os.path.join(folder, "seeds.txt")
        with open(seeds, "w") as f:
            f.writelines(f"http://h{i % args.hosts}.localhost:9/p/{i}\n"
                         for i in range(args.seeds))
        key = os.path.join(folder, "key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, secrets.token_hex(32).encode())
        os.close(fd)
        cmd = [sys.executable, "-m", "crawler.master", seeds, "--workers", "0",
               "--authkey-file", key, "-o", os.path.join(folder, "out.jsonl"),
               "--status", "off", "-s", "LOG_LEVEL=WARNING"]
        if args.jobdir:
            cmd += ["--jobdir", os.path.join(folder, "job")]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=folder)
        for line in proc.stdout:
            if line.startswith("master listening"):
                break
        took, peak = time.perf_counter() - started, peak_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        load = os.getloadavg()
        print(f"{args.seeds:,} seeds{' with a JOBDIR' if args.jobdir else ''}: listening "
              f"after {took:.1f} s, peak RSS {peak:.0f} MB (load {load[0]:.2f})")


if __name__ == "__main__":
    main()
