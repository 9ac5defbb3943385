"""The run records and the change log of a project (mixed into :class:`~.store.ProjectStore`)."""

from __future__ import annotations

import datetime as _dt
import os
import socket
from collections.abc import Iterable
from typing import Any

from .layout import CHANGES_LOG, REVIEW_GROUP
from .lock import live_holder


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunRecords:
    """Tracking runs in the metadata (``runs``) and the append-only change log."""

    def begin_run(self, **info: Any) -> int:
        """Record the start of a tracking run and return its id."""
        with self._meta_lock:
            runs = list(self.meta["runs"])
            run_id = max((r["id"] for r in runs), default=0) + 1
            runs.append({"id": run_id, "started": _now(), "status": "running",
                         "host": socket.gethostname(), "pid": os.getpid(), **info})
            self.update_meta(runs=runs)
        return run_id

    def end_run(self, run_id: int, status: str, **info: Any) -> None:
        """Record how a run ended: ``completed``, ``cancelled`` or ``failed``.

        (A run whose process died is shown as ``interrupted``: see :meth:`run_statuses`.)
        """
        with self._meta_lock:
            runs = [
                {**r, "status": status, "finished": _now(), **info} if r["id"] == run_id else r
                for r in self.meta["runs"]
            ]
            self.update_meta(runs=runs)

    def record_changes(
        self, ranges: Iterable[tuple[int, int, int]], reason: str, source: str, **info: Any
    ) -> None:
        """Append one durable record per ``(object, start, end)`` to ``review/changes.jsonl``.

        ``source`` is ``edit``, ``prompt``, ``propagation`` or ``undo``. A QC decision on a
        frame range is no longer valid once a later change overlaps it (see ``docs/review.md``).
        """
        from ._jsonl import append_records, now_iso

        time = now_iso()
        append_records(
            self.path / REVIEW_GROUP / CHANGES_LOG,
            [
                {"object": int(o), "start": int(a), "end": int(b), "source": source,
                 "reason": reason, "time": time, **info}
                for o, a, b in ranges
            ],
        )

    def _mark_dead_runs(self) -> None:
        """Runs still ``running`` while nobody else holds the lock died: mark them interrupted."""
        with self._meta_lock:
            runs = self.meta["runs"]
            if any(r.get("status") == "running" for r in runs):
                self.update_meta(runs=[
                    {**r, "status": "interrupted", "noticed": _now()}
                    if r.get("status") == "running" else r
                    for r in runs
                ])

    def run_statuses(self) -> dict[int, str]:
        """Each run's status as a user should read it: ``running`` only while its writer lives."""
        holder = live_holder(self.path)
        statuses = {}
        for run in self.meta["runs"]:
            status = run.get("status", "?")
            if status == "running":
                alive = holder is not None and (
                    "pid" not in run or (holder.pid, holder.host) == (run["pid"], run.get("host"))
                )
                status = "running" if alive else "interrupted"
            statuses[run["id"]] = status
        return statuses
