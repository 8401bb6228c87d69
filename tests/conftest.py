"""Shared fixtures: generated sites on loopback, a project folder, real master/worker processes."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crawler.sitegen import Site, SiteServer  # noqa: E402
from procs import REPO, Proc, ProcessRegistry, wait_for  # noqa: E402


@pytest.fixture
def serve():
    """Factory: serve(Site(...), host=..., delay=...) -> a started SiteServer, closed after."""
    servers: list[SiteServer] = []

    def start(site: Site, host: str = "127.0.0.1", delay: float = 0.0) -> SiteServer:
        server = SiteServer(site, host=host, port=0, delay=delay).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def site(serve) -> SiteServer:
    """A 60-book generated site (63 pages) on 127.0.0.1, a free port."""
    return serve(Site(pages=60))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working folder for the master: a copy of the repo's spiders/ and settings.py."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copytree(REPO / "spiders", folder / "spiders",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "settings.py", folder / "settings.py")
    return folder


@pytest.fixture
def procs(tmp_path: Path):
    """Starts masters and workers for a test; SIGKILLs the groups of any left at the end."""
    registry = ProcessRegistry(tmp_path / "logs", tmp_path / "tmpdir")
    yield registry
    registry.cleanup()


@pytest.fixture
def run_master(procs: ProcessRegistry, project: Path):
    """Run a master to its end (bounded) and check it left no process behind.

    run_master(args, cwd=project, timeout=20) -> the finished Proc (returncode set).
    """
    def run(args, cwd: Path | None = None, timeout: float = 20.0, name: str = "master",
            env=None) -> Proc:
        proc = procs.master(args, cwd or project, name, env)
        proc.wait(timeout)
        wait_for(lambda: not proc.group_alive(), 10,
                 f"{proc.name}'s local workers to exit after it did", describe=proc.describe)
        return proc

    return run
