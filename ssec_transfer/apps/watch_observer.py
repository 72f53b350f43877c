"""What a running `watch` tells the services around it: systemd (readiness, watchdog,
stopping), Prometheus metrics and the health check.

The watcher calls one `WatchObserver`; `Observers` fans each call out to several. Every
method has a do-nothing default, so an observer implements only what it cares about, and a
watcher without observers pays one empty call per event. Observers are called from the
event loop and must not block: they record, and serve their readers elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable


class WatchObserver:
    """The events of a watch run. Override what you need; each default does nothing."""

    def ready(self) -> None:
        """The folder was scanned once and the engine is connected: the service is up."""

    def alive(self) -> None:
        """A poll went round: the watcher is not stuck (a watchdog ping)."""

    def queue(self, *, seen: int, settling: int, in_flight: int, failing: int) -> None:
        """After each poll: files known, waiting to settle, uploading, waiting to retry."""

    def uploaded(self, *, size: int, seconds: float) -> None:
        """A file was uploaded and verified."""

    def failed(self, *, kind: str) -> None:
        """An upload failed; `kind` is the error's class name (`WrongKeyError`...)."""

    def retried(self) -> None:
        """A file that failed before is being tried again."""

    def aborted(self) -> None:
        """An upload in flight was cancelled at stop (its multipart upload aborted)."""

    def stopping(self) -> None:
        """A stop signal arrived: no new files; in-flight uploads drain."""


class Observers(WatchObserver):
    """Several observers as one."""

    def __init__(self, observers: Iterable[WatchObserver] = ()) -> None:
        self.observers = list(observers)

    def ready(self) -> None:
        for o in self.observers:
            o.ready()

    def alive(self) -> None:
        for o in self.observers:
            o.alive()

    def queue(self, *, seen: int, settling: int, in_flight: int, failing: int) -> None:
        for o in self.observers:
            o.queue(seen=seen, settling=settling, in_flight=in_flight, failing=failing)

    def uploaded(self, *, size: int, seconds: float) -> None:
        for o in self.observers:
            o.uploaded(size=size, seconds=seconds)

    def failed(self, *, kind: str) -> None:
        for o in self.observers:
            o.failed(kind=kind)

    def retried(self) -> None:
        for o in self.observers:
            o.retried()

    def aborted(self) -> None:
        for o in self.observers:
            o.aborted()

    def stopping(self) -> None:
        for o in self.observers:
            o.stopping()
