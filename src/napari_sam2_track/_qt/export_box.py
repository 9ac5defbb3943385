"""The "Export" part of the Prompt and Propagate dock: the open project in any export format.

*Export* first checks the output the way the exporter will (:func:`~napari_sam2_track.formats.
check_export_target`, in the dock's words): an output in the project, an existing one without
*overwrite* or one that is not a previous export of the format is refused at once, before
anything runs. It then calls the exporter of :mod:`napari_sam2_track.formats` on a thread of its
own (at a lower priority) with its ``progress(done, total)`` hook, watched by a napari generator
worker: the GUI thread only updates the dock. *Cancel* calls the worker's ``quit()``; the worker
then asks the export to stop at its next frame and joins its thread: the exporter removes its
staging output and a previous export at the destination stays as it was.

The folder of the last export is remembered between sessions (``export_dir`` of
:mod:`napari_sam2_track.settings`) and proposed for the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
)

from .. import settings
from .._threads import lower_thread_priority
from ..errors import PromptError, Sam2TrackError, StoreError, one_line
from ..formats import FORMATS, ExportOptions, canonical_format, check_export_target, export
from ..project.placement import Words
from ._hub import ProjectHub
from ._widgets import StatusLine
from .propagate_box import RunWorker

#: Seconds between two progress reports of the worker.
POLL_S = 0.1
#: Niceness of the export thread: on a busy machine the viewer gets the CPU first.
EXPORT_NICENESS = 10
#: How refusals name the dock's controls.
DOCK_WORDS = Words(out="output path", overwrite="'overwrite'", resume=None, verb="tick",
                   again="export again")


# ------------------------------------------------------------------------ the last folder
def last_export_folder() -> Path | None:
    """The folder of the last export, if it is remembered and still there."""
    folder = settings.get(settings.EXPORT_DIR)
    if not isinstance(folder, str) or not folder:
        return None
    return Path(folder) if Path(folder).is_dir() else None


def remember_export_folder(folder: str | Path) -> None:
    """Remember ``folder`` for the next export (a convenience: failing to write is ignored)."""
    settings.put(settings.EXPORT_DIR, str(Path(folder).resolve()))


def default_output(project: str | Path, fmt: str, folder: str | Path | None = None) -> Path:
    """``<project stem>-<format><suffix>`` in ``folder`` (default: beside the project)."""
    project = Path(project)
    stem = project.name[: -len(".zarr")] if project.name.endswith(".zarr") else project.name
    return Path(folder or project.parent) / FORMATS[canonical_format(fmt)].default_name(stem)


# ------------------------------------------------------------------------- the export thread
@dataclass
class ExportTick:
    """What the export worker yields: seconds since it started, what it is doing and the
    frames done of ``total`` (0 of 0 until the exporter reports)."""

    elapsed: float
    phase: str  # "waiting" (for prompts still being computed) or "exporting"
    done: int = 0
    total: int = 0


@dataclass
class ExportResult:
    """What the export worker returns."""

    out: Path
    seconds: float
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False


class ExportCancelled(BaseException):
    """Raised inside the exporter by its progress hook when the export is cancelled (a
    ``BaseException``, like Ctrl-C, so that no ``except Exception`` takes it for a failure)."""


class ExportJob(threading.Thread):
    """One export on a thread of its own: :func:`napari_sam2_track.formats.export` with a
    ``progress`` hook that keeps the latest count and stops the export once :meth:`cancel` is
    called. After it ends, ``error`` holds what it raised (``None`` if it completed) and
    ``warnings`` the exporter's notes (reported through its ``notes`` hook, not Python's
    process-wide warnings machinery, so that other threads' warnings are left alone)."""

    def __init__(self, project: Path, fmt: str, out: Path, *, approved_only: bool = False,
                 overwrite: bool = False):
        super().__init__(name="napari-sam2-track-export", daemon=True)
        self.project, self.fmt, self.out = project, fmt, out
        self.approved_only, self.overwrite = approved_only, overwrite
        self.latest: tuple[int, int] = (0, 0)
        self.error: BaseException | None = None
        self.warnings: list[str] = []
        self.completed = False
        self._cancel_requested = threading.Event()

    def cancel(self) -> None:
        """Stop at the next frame (the exporter removes its staging output)."""
        self._cancel_requested.set()

    def _progress(self, done: int, total: int) -> None:
        if self._cancel_requested.is_set():
            raise ExportCancelled
        self.latest = (int(done), int(total))

    def _note(self, text: str) -> None:
        self.warnings.append(one_line(text))

    def run(self) -> None:
        lower_thread_priority(EXPORT_NICENESS)
        try:
            if self._cancel_requested.is_set():
                raise ExportCancelled
            export(self.project, self.fmt, self.out, ExportOptions(approved_only=self.approved_only),
                   progress=self._progress, notes=self._note, overwrite=self.overwrite,
                   words=DOCK_WORDS)
            self.completed = True
        except BaseException as exc:  # noqa: BLE001 - handed to the worker, which reports it
            self.error = exc


def describe_failure(exc: BaseException) -> str:
    """An export's error as one whole line for the dock."""
    if isinstance(exc, Sam2TrackError):
        return one_line(str(exc))
    return one_line(f"export failed: {type(exc).__name__}: {exc}")


def run_export(job: ExportJob, wait_idle: Callable[[float], bool] | None = None) -> Iterator[ExportTick]:
    """(Worker thread.) Run ``job``; yields progress every :data:`POLL_S` seconds and returns
    an :class:`ExportResult`. Closing the generator cancels the export and joins its thread.

    ``wait_idle(timeout)`` is waited for first (prompts still being computed).
    """
    t0 = time.perf_counter()
    if wait_idle is not None:
        while not wait_idle(POLL_S):
            yield ExportTick(time.perf_counter() - t0, "waiting")
    job.start()
    try:
        while job.is_alive():
            yield ExportTick(time.perf_counter() - t0, "exporting", *job.latest)
            job.join(POLL_S)
    finally:
        if job.is_alive():  # closed by quit(): stop at the next frame, then wait for the cleanup
            job.cancel()
            job.join()
    seconds = time.perf_counter() - t0
    if isinstance(job.error, ExportCancelled):
        return ExportResult(job.out, seconds, cancelled=True)
    if job.error is not None:
        raise StoreError(describe_failure(job.error)) from job.error
    yield ExportTick(time.perf_counter() - t0, "exporting", *job.latest)  # the final count
    return ExportResult(job.out, seconds, job.warnings)


# ------------------------------------------------------------------------------------ the box
class ExportBox(QGroupBox):
    """Format, output path, *approved only*, *overwrite* -> *Export* (worker) / *Cancel*.

    Args:
        hub: the viewer's shared state (the open session).
        on_error: shows an error to the user (one line).
        before_export: called on the GUI thread before an export (saves pending label edits).
    """

    def __init__(self, hub: ProjectHub, on_error: Callable[[BaseException], Any],
                 before_export: Callable[[], Any] | None = None):
        super().__init__("Export")
        self.hub = hub
        self.on_error = on_error
        self.before_export = before_export
        #: the export worker, while an export runs
        self.worker = None
        #: the outcome of the last export (``None`` before the first)
        self.last_result: ExportResult | None = None
        self._pbar = None
        self._auto_out: str | None = None  # the output path the dock proposed (not typed)
        self._job: ExportJob | None = None
        form = QFormLayout(self)
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(FORMATS))
        self.format_combo.currentTextChanged.connect(lambda _fmt: self._propose_output())
        form.addRow("Format", self.format_combo)
        row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("<project>-<format> in the last export folder")
        browse = QPushButton("…")
        browse.setMaximumWidth(30)
        browse.clicked.connect(self._browse)
        row.addWidget(self.out_edit)
        row.addWidget(browse)
        form.addRow("Output", row)
        self.approved_check = QCheckBox("approved only")
        self.approved_check.setToolTip("Only masklets approved as satisfactory in the Review dock")
        self.overwrite_check = QCheckBox("overwrite")
        self.overwrite_check.setToolTip("Replace a previous export of this format (never anything else)")
        row = QHBoxLayout()
        row.addWidget(self.approved_check)
        row.addWidget(self.overwrite_check)
        form.addRow(row)
        row = QHBoxLayout()
        self.export_btn = QPushButton("Export")
        self.export_btn.clicked.connect(lambda: self.export())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(lambda: self.cancel())
        row.addWidget(self.export_btn)
        row.addWidget(self.cancel_btn)
        form.addRow(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setVisible(False)
        form.addRow(self.progress_bar)
        self.status_label = StatusLine("", lines=3)
        form.addRow(self.status_label)
        hub.session_changed.connect(self._attach)
        self._attach(hub.session)

    # ------------------------------------------------------------------ state
    def _attach(self, _session: Any) -> None:
        self._propose_output()

    def _propose_output(self) -> None:
        """Fill the output path for the chosen format, unless the user typed one."""
        session = self.hub.session
        text = self.out_edit.text().strip()
        if session is None or (text and text != self._auto_out):
            return
        self._auto_out = str(default_output(session.store.path, self.format_combo.currentText(),
                                            last_export_folder()))
        self.out_edit.setText(self._auto_out)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.out_edit.text(),
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.out_edit.setText(path)

    @property
    def running(self) -> bool:
        """Whether an export runs."""
        return self.worker is not None

    # ---------------------------------------------------------------- actions
    def export(self, fmt: str | None = None, out: str | Path | None = None, *,
               approved_only: bool | None = None, overwrite: bool | None = None):
        """Export the open project on a worker; returns the worker (``None`` if refused).

        Arguments left out are read from the dock's controls. A refused output is said at once,
        in the dock's words, before anything runs.
        """
        from napari.qt.threading import create_worker
        from napari.utils import progress

        try:
            session = self.hub.session
            if self.worker is not None:
                raise PromptError("an export is already running; wait for it or press Cancel")
            if session is None:
                raise PromptError("no project open: choose the image layer and press 'Open project'")
            if session.running:
                raise PromptError("a propagation is running; export when it has finished or cancel it")
            fmt = canonical_format(fmt or self.format_combo.currentText())
            project = Path(session.store.path)
            out = Path(out) if out is not None else Path(
                self.out_edit.text().strip() or default_output(project, fmt, last_export_folder()))
            approved_only = self.approved_check.isChecked() if approved_only is None else approved_only
            overwrite = self.overwrite_check.isChecked() if overwrite is None else overwrite
            check_export_target(project, fmt, out, overwrite=overwrite, words=DOCK_WORDS)
            if self.before_export is not None:
                self.before_export()
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._show(describe_failure(exc), error=True)
            self.on_error(exc)
            return None
        self._ended = False  # the worker returned or failed
        self._job = ExportJob(project, fmt, out, approved_only=approved_only, overwrite=overwrite)
        worker = create_worker(run_export, self._job, session.wait_idle, _worker_class=RunWorker,
                               _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_tick)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(self._on_worker_finished)
        self.worker = worker
        self._fmt, self._out, self._started = fmt, out, time.perf_counter()
        self._pbar = progress(total=0, desc=f"export to {fmt}")
        self.export_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the exporter reports its frame count
        self.progress_bar.setVisible(True)
        self._show(f"exporting to {fmt}: {out}")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the export; nothing is left at the output (a previous export stays)."""
        if self.worker is not None:
            if self._job is not None:  # reaches the exporter now, not at the next tick
                self._job.cancel()
            self.worker.quit()
            self._show("cancelling…")

    # ------------------------------------------------------------ worker events
    def _on_tick(self, tick: ExportTick) -> None:
        if tick.phase == "waiting":
            self._show(f"waiting for prompts being computed… {tick.elapsed:.0f} s")
            return
        if not tick.total:
            self._show(f"exporting to {self._fmt}… {tick.elapsed:.0f} s")
            return
        self._show(f"exporting to {self._fmt}… {tick.done}/{tick.total}, {tick.elapsed:.0f} s")
        if self.progress_bar.maximum() != tick.total:
            self.progress_bar.setRange(0, tick.total)
        self.progress_bar.setValue(tick.done)
        if self._pbar is not None:
            if self._pbar.total != tick.total:
                self._pbar.total = tick.total
            if tick.done > self._pbar.n:
                self._pbar.update(tick.done - self._pbar.n)

    def _on_returned(self, result: Any) -> None:
        if not isinstance(result, ExportResult):  # stopped by quit(): told when it finished
            return
        self._ended = True
        self.last_result = result
        if result.cancelled:
            self._show(f"export cancelled; nothing was written to {result.out}")
            return
        remember_export_folder(Path(result.out).parent)
        text = f"wrote {result.out} in {result.seconds:.1f} s"
        if result.warnings:
            text += "\n" + "\n".join(f"warning: {w}" for w in result.warnings)
        self._show(text)

    def _on_failed(self, exc: BaseException) -> None:
        self._ended = True
        self._show(describe_failure(exc), error=True)
        self.on_error(exc)

    def _on_worker_finished(self) -> None:
        worker, self.worker = self.worker, None
        job, self._job = self._job, None
        if worker is not None and worker.abort_requested and not self._ended:
            # quit(): the export was stopped, unless it had just completed by itself
            seconds = time.perf_counter() - self._started
            done = job is not None and job.completed
            self._on_returned(ExportResult(self._out, seconds, cancelled=not done))
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setVisible(False)
        self.export_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _show(self, text: str, error: bool = False) -> None:
        self.status_label.set_text(text, error=error)
