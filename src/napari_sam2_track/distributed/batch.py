"""Batch tracking on dask.distributed: many videos, one project each, a summary at the end.

:func:`run_batch` is the Python API behind ``napari-sam2-track batch``. It submits one task per
manifest row (:func:`~.tasks.track_video`) to a cluster (an embedded ``LocalCluster`` sized to the
machine, an existing scheduler, or the caller's own ``Client``), shows progress over videos and
frames reported by the workers, retries tasks that crash, and returns a :class:`BatchSummary`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .manifest import BatchItem, ManifestRow, load_manifest, resolve_rows
from .models import ModelSpec, PreloadModel
from .tasks import track_video

SUMMARY_COLUMNS = ("name", "status", "frames", "seconds", "fps", "attempts", "error")


@dataclass
class BatchSummary:
    """One row per video: name, video, out, status, frames, seconds, fps, attempts, worker,
    error."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Rows whose tracking, or whose second opinion, failed."""
        return [r for r in self.rows if r["status"] == "failed"
                or (r.get("second_opinion") or {}).get("status") == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 3), "counts": self.counts(), "videos": self.rows}

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.as_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def table(self) -> str:
        """The summary as a plain-text table."""
        cells = [list(SUMMARY_COLUMNS)]
        for r in self.rows:
            cells.append([
                str(r["name"]),
                r["status"],
                str(r["frames"]),
                f"{r['seconds']:.1f}",
                f"{r['fps']:.2f}",
                str(r["attempts"]),
                "; ".join(filter(None, [r["error"], _second_opinion_cell(r.get("second_opinion"))])),
            ])
        widths = [max(len(row[i]) for row in cells) for i in range(len(SUMMARY_COLUMNS) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1]
                 for row in cells]
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts().items()))
        lines.append(f"{len(self.rows)} videos in {self.seconds:.1f} s: {counts}")
        return "\n".join(line.rstrip() for line in lines)


class _Progress:
    """Frames done per task, fed by worker events on the client's event loop thread."""

    def __init__(self, n_videos: int, show: bool):
        self.lock = threading.Lock()
        self.done: dict[int, int] = {}
        self.total: dict[int, int] = {}
        self.videos_done = 0
        self.n_videos = n_videos
        self.bar = None
        self._shown: tuple = ()
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="frame", desc=f"videos 0/{n_videos}")

    def on_event(self, event) -> None:
        _, msg = event
        with self.lock:
            self.done[msg["index"]] = msg["done"]
            self.total[msg["index"]] = msg["total"]

    def refresh(self) -> None:
        if self.bar is None:
            return
        with self.lock:
            done, total = sum(self.done.values()), sum(self.total.values())
        state = (done, total, self.videos_done)
        if state == self._shown:
            return
        self._shown = state
        self.bar.total = max(total, done)
        self.bar.n = done
        self.bar.set_description(f"videos {self.videos_done}/{self.n_videos}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.refresh()
            self.bar.close()


def _second_opinion_cell(row: dict | None) -> str:
    """The summary's words for a video's second opinion (``""``: none was asked for)."""
    if not row:
        return ""
    if row["status"] == "failed":
        return f"second opinion failed: {row['error']}"
    return f"second opinion {row['name']!r} {row['status']}: {row['disagreeing']} object-frames disagree"


def _error_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:300]


def _rows(manifest_or_rows, out_dir: Path) -> list[ManifestRow]:
    if isinstance(manifest_or_rows, (str, Path)):
        return load_manifest(manifest_or_rows, out_dir)
    rows = list(manifest_or_rows)
    if rows and isinstance(rows[0], ManifestRow):
        return rows
    return resolve_rows(rows, out_dir)


def run_batch(
    manifest_or_rows: str | Path | Sequence[dict | BatchItem | ManifestRow],
    out_dir: str | Path,
    *,
    model: ModelSpec | str | dict = "tiny",
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    retries: int = 2,
    overwrite: bool = False,
    segments: int | None = None,
    progress: bool = True,
    summary_path: str | Path | None = None,
    second_opinion: ModelSpec | str | dict | None = None,
    second_opinion_name: str | None = None,
) -> BatchSummary:
    """Track every video of a manifest into its own project; return the summary.

    Args:
        manifest_or_rows: a CSV/YAML manifest path, or rows (dicts or
            :class:`~.manifest.BatchItem`; relative paths are relative to the current folder).
        out_dir: folder of the output projects (rows may name their own ``out``).
        model: model options as for ``track``: a :class:`~..engine.spec.ModelSpec`, a model name or
            checkpoint path, or a dict of ``ModelSpec`` fields.
        client: a ``distributed.Client`` to use (a notebook's own); left open.
        scheduler: address of an existing scheduler (when no ``client`` is given).
        n_workers: workers of the embedded local cluster (default: one per GPU, else one).
        retries: how often a crashed task is tried again before it is reported as failed.
        overwrite: re-track videos whose projects exist instead of skipping or resuming them.
        segments: split each video into this many time segments (see :mod:`.segments`);
            a row's own ``segments`` wins.
        progress: show a progress bar over videos and frames.
        summary_path: also write the summary as JSON there.
        second_opinion: a second model (as ``model``): once a video's project is tracked (or
            found complete), a task re-tracks it from its keyframes with this model and
            compares (:mod:`.second_opinion`); each row gets a ``second_opinion`` entry.
        second_opinion_name: the second opinions' name (default: the model's name and size).
    """
    from .cluster import connect

    check_options(n_workers=n_workers, retries=retries, segments=segments)
    out_dir = Path(out_dir)
    rows = _rows(manifest_or_rows, out_dir)
    spec = ModelSpec.coerce(model)
    second = _SecondOpinions(ModelSpec.coerce(second_opinion), second_opinion_name, overwrite) \
        if second_opinion is not None else None
    started = time.perf_counter()
    results: dict[int, dict] = {}
    attempts: dict[int, int] = {}
    for row in rows:
        if row.error is not None:
            results[row.index] = {"index": row.index, "out": str(row.out or ""), "status": "failed",
                                  "frames": 0, "seconds": 0.0, "fps": 0.0, "error": row.error,
                                  "worker": None}
    todo = [r for r in rows if r.error is None]
    out_dir.mkdir(parents=True, exist_ok=True)
    with connect(client, scheduler, n_workers) as (dask_client, torch_threads):
        dask_client.register_plugin(PreloadModel(spec, torch_threads), name=PreloadModel.name)
        topic = f"napari-sam2-track-{uuid.uuid4().hex[:8]}"
        bar = _Progress(len(rows), progress)
        bar.videos_done = len(results)
        dask_client.subscribe_topic(topic, bar.on_event)
        try:
            results.update(
                _run_tasks(dask_client, todo, spec, topic, retries, overwrite, segments, bar,
                           attempts, second)
            )
        finally:
            dask_client.unsubscribe_topic(topic)
            bar.close()
    summary = BatchSummary(seconds=time.perf_counter() - started)
    for row in rows:
        result = results[row.index]
        summary.rows.append({
            "name": row.label,
            "video": row.item.video if row.item is not None else None,
            **result,
            "seconds": round(result["seconds"], 3),
            "fps": round(result["fps"], 3),
            "attempts": attempts.get(row.index, 0),
        })
    if summary_path is not None:
        summary.to_json(summary_path)
    return summary


def check_options(*, n_workers: int | None = None, retries: int = 0,
                  segments: int | None = None) -> None:
    """Refuse counts that mean nothing (``--workers 0``, ``--retries -1``, ``--segments 0``)."""
    from ..errors import PromptError
    from .cluster import ClusterError

    if n_workers is not None and n_workers < 1:
        raise ClusterError(f"--workers must be 1 or more, not {n_workers}")
    if retries < 0:
        raise ClusterError(f"--retries must be 0 or more, not {retries}")
    if segments is not None and segments < 1:
        raise PromptError(f"--segments must be 1 or more, not {segments}")


def _failed(row: ManifestRow, error: str) -> dict:
    return {"index": row.index, "out": str(row.out), "status": "failed", "frames": 0,
            "seconds": 0.0, "fps": 0.0, "error": error, "worker": None}


@dataclass
class _SecondOpinions:
    """What ``batch --second-opinion`` asks of each tracked video."""

    spec: ModelSpec
    name: str | None
    overwrite: bool
    attempts: dict[int, int] = field(default_factory=dict)

    def submit(self, client, row: ManifestRow, topic: str):
        from .second_opinion import second_opinion_task

        self.attempts[row.index] = self.attempts.get(row.index, 0) + 1
        return client.submit(second_opinion_task, row.index, row.item.video, str(row.out), self.spec,
                             name=self.name, overwrite=self.overwrite, topic=topic,
                             key=f"second-opinion-{row.index}-{uuid.uuid4().hex[:8]}", pure=False)


_SECOND = -1  # the "segment" of a second opinion's future in ``pending``


def _run_tasks(client, rows, spec, topic, retries, overwrite, segments, bar, attempts,
               second: _SecondOpinions | None = None) -> dict:
    """Submit one task per row (one per segment for segmented rows), resubmit crashed ones,
    collect result rows."""
    from distributed import wait

    from .segments import SegmentedVideo

    results: dict[int, dict] = {}
    pending: dict[object, tuple[ManifestRow, int | None]] = {}  # future -> (row, segment)
    jobs: dict[int, SegmentedVideo] = {}

    def finish(row: ManifestRow, result: dict) -> None:
        results[row.index] = result
        bar.videos_done += 1
        if second is not None and result["status"] != "failed":
            pending[second.submit(client, row, topic)] = (row, _SECOND)

    def submit(row: ManifestRow) -> None:
        attempts[row.index] = attempts.get(row.index, 0) + 1
        future = client.submit(
            track_video, row.index, row.item.model_dump(), str(row.out), spec,
            topic=topic, overwrite=overwrite, key=f"track-{row.index}-{uuid.uuid4().hex[:8]}",
            pure=False,
        )
        pending[future] = (row, None)

    def submit_segmented(row: ManifestRow, n_segments: int) -> None:
        job = jobs[row.index] = SegmentedVideo(row.index, row.item, row.out, spec, n_segments,
                                               overwrite, topic)
        attempts[row.index] = 1
        try:
            futures = job.submit(client)
        except Exception as exc:  # noqa: BLE001 - reported in the summary; the others go on
            finish(row, job.failed(str(exc) if _is_user_error(exc) else _error_line(exc)))
            return
        if not futures:
            finish(row, job.finish())
        for future, segment in futures.items():
            pending[future] = (row, segment)

    for row in rows:
        n_segments = row.item.segments or segments
        if n_segments and n_segments > 1:
            submit_segmented(row, n_segments)
        else:
            submit(row)
    while pending:
        try:
            done, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        for future in done:
            row, segment = pending.pop(future)
            if segment == _SECOND:
                if future.status == "finished":
                    results[row.index]["second_opinion"] = future.result()
                elif second.attempts[row.index] <= retries:
                    pending[second.submit(client, row, topic)] = (row, _SECOND)
                else:
                    results[row.index]["second_opinion"] = {
                        "status": "failed", "name": second.name, "frames": 0, "seconds": 0.0,
                        "disagreeing": None, "error": _error_line(future.exception()), "worker": None}
                continue
            job = jobs.get(row.index)
            ok = future.status == "finished"
            if job is None:
                if ok:
                    finish(row, future.result())
                elif attempts[row.index] <= retries:
                    submit(row)
                else:
                    finish(row, _failed(row, _error_line(future.exception())))
                continue
            # a segment: retry it alone; the run ends when no segment of it is pending
            if ok:
                job.part_done(future.result())
            elif job.attempts[segment] <= retries:
                pending[job.submit_segment(client, segment)] = (row, segment)
                attempts[row.index] = max(job.attempts.values())
            else:
                job.error = job.error or f"segment {segment}: {_error_line(future.exception())}"
            if not any(r is row and s != _SECOND for r, s in pending.values()):
                finish(row, job.failed(job.error) if job.error else job.finish())
        bar.refresh()
    return results


def _is_user_error(exc: BaseException) -> bool:
    from ..errors import Sam2TrackError

    return isinstance(exc, Sam2TrackError)
