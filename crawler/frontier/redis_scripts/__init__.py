"""The Lua steps of the Redis frontier (common.lua + one file per step), and a pipeline of
calls to them."""
from __future__ import annotations

from importlib import resources
from typing import Any, Callable

_STEPS = ("admit", "lease", "complete", "expire", "release", "feedback")


def _sources() -> dict[str, str]:
    folder = resources.files(__name__)
    common = (folder / "common.lua").read_text()
    return {step: common + (folder / f"{step}.lua").read_text() for step in _STEPS}


SOURCES = _sources()


class ScriptPipeline:
    """A pipeline of script calls that loads the scripts again when Redis lost them (a
    restart: scripts are not persisted) and re-runs just those calls."""

    def __init__(self, frontier: Any) -> None:
        self.frontier, self.calls = frontier, []

    def evalsha(self, sha: str, *args: Any) -> None:
        self.calls.append((sha, args))

    def _run(self, calls: list) -> list:
        client = self.frontier.client
        if not hasattr(client, "connection_pool"):  # a Cluster client: no scripts in its
            return [_result(client.evalsha, sha, args) for sha, args in calls]  # pipelines
        pipe = client.pipeline(transaction=False)
        for sha, args in calls:
            pipe.evalsha(sha, *args)
        return pipe.execute(raise_on_error=False)

    def execute(self) -> list:
        from redis.exceptions import NoScriptError
        replies = self._run(self.calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            old = self.frontier._sha
            self.frontier._sha = new = self.frontier._load_scripts()
            rename = {old[step]: new[step] for step in old}
            again = self._run([(rename[self.calls[i][0]], self.calls[i][1]) for i in missing])
            for i, reply in zip(missing, again):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies


def _result(call: Callable, sha: str, args: tuple) -> Any:
    try:
        return call(sha, *args)
    except Exception as exc:  # as a pipeline's execute(raise_on_error=False) gives it
        return exc
