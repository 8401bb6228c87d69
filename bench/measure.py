"""Running one crawl process and measuring it (Linux): CPU of its whole process tree from
os.wait4(), peak RSS per process from /proc, whether other processes keep the CPUs busy; plus
what every benchmark needs around that (the commit measured, an environment without proxies,
a free loopback port, a Python that can import Scrapy)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
               "ALL_PROXY")


# ---------------------------------------------------------------------------------------------
# /proc helpers (Linux)

def _children(pid: int) -> list[int]:
    """Direct children of pid (all of its threads), via /proc/<pid>/task/*/children."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(_children(p))
    return tree


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (None when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    """A 'kB' line of /proc/<pid>/status (VmHWM, VmRSS), None when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def code_state() -> dict:
    """The commit measured, and whether crawler/ had uncommitted changes."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True,
                                  timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "dirty": git("status", "--porcelain", "--", "crawler").splitlines()}


def stop_forked(pids: list[int]) -> None:
    """SIGTERM forked server processes of ours, then reap each."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



# ---------------------------------------------------------------------------------------------
# Running one crawl and measuring it

def run_measured(name: str, argv: list[str], cwd: str, env: dict[str, str], timeout: float,
                 server_pids: list[int], profile_dir: str | None = None,
                 py_spy: str | None = None) -> dict:
    """Run argv in its own session; poll its process tree; return measurements.

    CPU comes from os.wait4() on the top process: Linux folds into it the usage of every
    descendant it waited for (master + workers), exactly. Peak RSS per process is VmHWM read
    from /proc while it runs (the last reading before it exits); ru_maxrss from wait4 is the
    largest peak of any single process in the tree.
    """
    busy = others_busy()
    if busy > 0.15:
        print(f"note: {busy:.0%} of the CPUs were busy with other processes just before the "
              f"{name} run; its numbers will be noisy", file=sys.stderr, flush=True)
    server_cpu0 = sum(filter(None, (proc_cpu_seconds(p) for p in server_pids)))
    out_log = open(os.path.join(cwd, f"{name}.stdout"), "wb")
    err_log = open(os.path.join(cwd, f"{name}.stderr"), "wb")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out_log, stderr=err_log,
                            start_new_session=True)
    procs: dict[int, dict] = {}
    spies: list[subprocess.Popen] = []
    killed = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter() - started
        for p in process_tree(proc.pid):
            info = procs.get(p)
            if info is None:
                info = procs[p] = {"pid": p, "role": "top" if p == proc.pid else "child",
                                   "cmd": proc_cmdline(p), "hwm_kb": 0, "cpu_s": 0.0,
                                   "first_seen": round(now, 2)}
                if profile_dir and py_spy:
                    spies.append(_start_py_spy(py_spy, p, info["role"], profile_dir))
            hwm = proc_status_kb(p, "VmHWM")
            if hwm:
                info["hwm_kb"] = max(info["hwm_kb"], hwm)
            cpu = proc_cpu_seconds(p)
            if cpu is not None:
                info["cpu_s"] = cpu
        if now > timeout and killed is None:
            print(f"{name}: timeout after {timeout:.0f} s; terminating", file=sys.stderr)
            killed = now
            os.killpg(proc.pid, signal.SIGTERM)
        elif killed is not None and now > killed + 15:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.1)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out_log.close()
    err_log.close()
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    server_cpu = sum(filter(None, (proc_cpu_seconds(p) for p in server_pids))) - server_cpu0
    top = procs.get(proc.pid, {"hwm_kb": 0, "cpu_s": 0.0})
    kids = [i for p, i in procs.items() if p != proc.pid]
    return {
        "exit_status": proc.returncode, "timed_out": killed is not None,
        "cpus_busy_before": round(busy, 3),
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "cpu_user_s": round(usage.ru_utime, 3), "cpu_sys_s": round(usage.ru_stime, 3),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "top_hwm_mb": round(top["hwm_kb"] / 1024, 1),
        "children_hwm_mb": [round(i["hwm_kb"] / 1024, 1) for i in kids],
        "top_cpu_s_polled": round(top["cpu_s"], 2),
        "children_cpu_s_polled": [round(i["cpu_s"], 2) for i in kids],
        "server_cpu_s": round(server_cpu, 2),
        "processes": list(procs.values()),
        "stdout": _tail(os.path.join(cwd, f"{name}.stdout")),
        "stderr": _tail(os.path.join(cwd, f"{name}.stderr")),
    }


def others_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy (with anything) over a short idle wait of ours."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    (t0, i0), _ = sample(), time.sleep(seconds)
    t1, i1 = sample()
    return 1 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def _tail(path: str, n: int = 4000) -> str:
    with open(path, "rb") as f:
        data = f.read()
    return data[-n:].decode(errors="replace")


PY_SPY_FLAGS = os.environ.get("BENCH_PY_SPY_FLAGS", "--gil --nonblocking").split()


def _start_py_spy(py_spy: str, pid: int, role: str, folder: str) -> subprocess.Popen:
    base = os.path.join(folder, f"{'master' if role == 'top' else 'worker'}-{pid}")
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "200",
                             "--format", "raw", "--function", *PY_SPY_FLAGS,
                             "-o", base + ".txt"],
                            stdout=subprocess.DEVNULL, stderr=open(base + ".log", "wb"))


def find_scrapy_python(explicit: str | None) -> str | None:
    """A Python that can import scrapy: --scrapy-python, $BENCH_SCRAPY_PYTHON, this one,
    the interpreter of a `scrapy` on PATH, or /tmp/scrapyvenv."""
    candidates = [explicit, os.environ.get("BENCH_SCRAPY_PYTHON"), sys.executable]
    on_path = shutil.which("scrapy")
    if on_path:
        candidates.append(os.path.join(os.path.dirname(on_path), "python"))
    candidates.append("/tmp/scrapyvenv/bin/python")
    for python in candidates:
        if python and os.path.exists(python):
            ok = subprocess.run([python, "-c", "import scrapy"], capture_output=True,
                                env=child_env())
            if ok.returncode == 0:
                return python
        if python and python == explicit:
            raise SystemExit(f"error: --scrapy-python {python}: cannot import scrapy")
    return None



def compile_code(folder: str) -> None:
    """Byte-compile the crawler package in `folder`, as pip does on install: with
    PYTHONDONTWRITEBYTECODE set (some shells and CI set it), every crawler process would
    otherwise compile ~12,000 lines from source at start (~0.1 s CPU each, 5% of a
    5,000-page crawl) and the numbers would measure that."""
    import compileall
    compileall.compile_dir(os.path.join(folder, "crawler"), quiet=1)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env
