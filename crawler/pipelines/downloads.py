"""On the master: the media downloads the pipelines asked for, as tasks in the frontier.

Each media URL (per pipeline) is one frontier task, whatever number of items wait for it:
the first request admits it, later ones wait for the same outcome, and once settled the
outcome is remembered for the rest of the crawl (a checksum and a status, or a failure
reason: about 200 bytes a URL). Downloads are leased, retried, expired and journaled like
pages. The calls come from the sink's thread (request) and from the scheduler, under its
lock (settled, failed); store() runs in a server thread before that lock is taken.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from .. import components

log = logging.getLogger(__name__)
Notify = Callable[[dict[str, Any]], None]


class MediaDownloads:
    """Who waits for which download, and how each ended."""

    def __init__(self) -> None:
        self.pipelines: dict[str, Any] = {}  # by name: their stores
        self.settled: dict[bytes, dict[str, Any]] = {}  # fp -> {checksum, status} | {reason}
        self.waiting: dict[bytes, list[Notify]] = {}
        self.stored_files = self.stored_bytes = 0  # written here (MEDIA_WRITTEN_BY=master)
        self._scheduler: Any = None
        self._unfinished: Callable[[], int] = lambda: 0

    def register(self, pipeline: Any) -> None:
        """A media pipeline of this crawl (FilesPipeline.from_crawler calls it)."""
        self.pipelines[pipeline.name] = pipeline

    def bind(self, scheduler: Any, unfinished: Callable[[], int]) -> None:
        """Admit through `scheduler`; `unfinished()` counts the items the sink has not
        written yet (while any is left, one of them may still ask for a download)."""
        self._scheduler, self._unfinished = scheduler, unfinished

    def busy(self) -> bool:
        """Items are still on their way to the feeds: the crawl is not over."""
        return self._unfinished() > 0

    # -- from the sink's thread --------------------------------------------------------
    def known(self, fp: bytes) -> bool:
        """This download was asked for in this run already (settled or on its way)."""
        return fp in self.settled or fp in self.waiting

    def request(self, wants: list[tuple[dict[str, Any], Notify]]) -> None:
        """Download each task (unless known or on its way) and call its notify with the
        outcome: {"checksum", "status"} or {"reason"}. Notify may be called at once."""
        self._scheduler.locked(lambda frontier: self._admit(frontier, wants))

    def _admit(self, frontier: Any, wants: list[tuple[dict[str, Any], Notify]]) -> None:
        asked = []
        for task, notify in wants:
            fp = task["fp"]
            if fp in self.settled:
                notify(self.settled[fp])
            elif fp in self.waiting:
                self.waiting[fp].append(notify)
            else:
                self.waiting[fp] = [notify]
                asked.append(task)
        new = []
        for task, state in zip(asked, frontier.media_states(asked)):
            if isinstance(state, dict):  # settled by a run before a restart (Redis keeps it)
                self._settle(task["fp"], state)
            elif state is None:
                new.append(task)
            elif state == "again":  # settled by a run before a restart, outcome not kept
                new.append(dict(task, dont_filter=True))
        frontier.admit(new)
        for task, state in zip(new, frontier.media_states(new)):
            if state != "pending":  # HOST_PAGE_LIMIT refused it
                self._settle(task["fp"], state if isinstance(state, dict) else
                             {"reason": "host_page_limit"})

    def outcomes(self, settled: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Downloads settled elsewhere (in Redis, told through its items stream): every
        item waiting for one is told."""
        def settle(_frontier: Any) -> None:
            for fp, outcome in settled:
                self._settle(fp, outcome)
        self._scheduler.locked(settle)

    # -- from the scheduler --------------------------------------------------------------
    def store(self, results: list[dict[str, Any]]) -> None:
        """Write the files that came in results (MEDIA_WRITTEN_BY=master), before the
        results are settled: a download is done only once it is stored."""
        for result in results:
            blobs = result.pop("blobs", None)
            if not blobs:
                continue
            pipeline = self.pipelines.get(result.get("media", {}).get("pipeline"))
            try:
                for path, data in blobs.items():
                    pipeline.store.persist(path, data)
                    self.stored_files, self.stored_bytes = (self.stored_files + 1,
                                                            self.stored_bytes + len(data))
            except Exception as exc:  # a full disk, a store that is down: try again later
                log.error("cannot store %s: %r", result.get("media", {}).get("url"), exc)
                result.pop("media", None)
                result.update(outcome="retry", reason="store_error")

    def settled_ok(self, task: dict[str, Any], result: dict[str, Any]) -> None:
        """A worker's result for a media task was taken (under the scheduler's lock)."""
        media = result.get("media")
        if result.get("outcome") == "done" and media is not None:
            self._settle(task["fp"], {"checksum": media["checksum"], "status": media["status"]})

    def failed(self, task: dict[str, Any], reason: str | None) -> None:
        """The frontier failed a media task for good (a worker's result, robots.txt,
        retries used up): every item waiting for it is told."""
        self._settle(task["fp"], {"reason": reason or "failed"})

    def _settle(self, fp: bytes, outcome: dict[str, Any]) -> None:
        self.settled[fp] = outcome
        for notify in self.waiting.pop(fp, ()):
            notify(outcome)


def media_pipelines(spec: dict[str, int | None]) -> list[str]:
    """The paths of ITEM_PIPELINES that are media pipelines (the master tells its workers:
    they make only those, and never import the other pipelines, which run on the master)."""
    from .files import FilesPipeline  # here: a crawl without media pipelines needs none
    paths = [path for path, order in spec.items() if order is not None]
    classes = [components.load_class("ITEM_PIPELINES", path) for path in paths]
    return [path for path, cls in zip(paths, classes)
            if isinstance(cls, type) and issubclass(cls, FilesPipeline)]
