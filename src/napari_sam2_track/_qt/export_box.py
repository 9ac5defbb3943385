"""The "Export" part of the Prompt and Propagate dock: the open project in any export format.

*Export* runs the ``export`` command (:mod:`napari_sam2_track.cli.export`, the exporters of
:mod:`napari_sam2_track.formats` with their checks and atomic writes) in a child process at a
lower priority (niceness :data:`EXPORT_NICENESS`), watched by a napari generator worker: the
GUI thread only updates the dock, and the export does not compete with it for the interpreter.
*Cancel* calls the worker's ``quit()``; the worker then stops the child with SIGTERM, which the
command treats like Ctrl-C: the exporter removes its hidden temporary output and a previous
export at the destination stays as it was. The command runs with ``--progress``: a thread of
the worker reads its ``{"done": D, "total": N}`` lines, and the worker's ticks carry the
latest count to the dock's progress bar (and napari's).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
)

from ..cli.export import parse_progress_line
from ..errors import PromptError, StoreError, one_line
from ..formats import FORMATS, canonical_format
from ._hub import ProjectHub
from .propagate_box import RunWorker

#: File name endings of the single-file formats (the others write a folder).
FILE_SUFFIXES = {"tiff": ".tif", "table": ".csv", "youtube-vis": ".json", "cvat": ".xml", "mots": ".txt"}
#: Seconds the child gets to clean up after SIGTERM before it is killed.
STOP_GRACE_S = 20.0
#: Seconds between two progress reports of the worker.
POLL_S = 0.1
#: Niceness of the export process: on a busy machine the viewer gets the CPU first.
EXPORT_NICENESS = 10


def default_output(project: str | Path, fmt: str) -> Path:
    """``<project stem>-<format><suffix>`` beside the project (``.ome.zarr`` for OME-Zarr)."""
    project = Path(project)
    fmt = canonical_format(fmt)
    stem = project.name[: -len(".zarr")] if project.name.endswith(".zarr") else project.name
    suffix = ".ome.zarr" if fmt.startswith("ome-zarr") else FILE_SUFFIXES.get(fmt, "")
    return project.parent / f"{stem}-{fmt}{suffix}"


def export_command(project: str | Path, fmt: str, out: str | Path, *, approved_only: bool = False,
                   overwrite: bool = False) -> list[str]:
    """The ``napari-sam2-track export`` command line the dock runs (with ``--progress``)."""
    argv = [sys.executable, "-m", "napari_sam2_track.cli", "export", str(project),
            "--format", canonical_format(fmt), "--out", str(out), "--progress"]
    if approved_only:
        argv.append("--approved-only")
    if overwrite:
        argv.append("--overwrite")
    return argv


@dataclass
class ExportTick:
    """What the export worker yields: seconds since it started, what it is doing and the
    frames done of ``total`` (0 of 0 until the command reports)."""

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


def _lines(text: str, prefix: str) -> list[str]:
    return [line[len(prefix):].strip() for line in text.splitlines() if line.startswith(prefix)]


def run_export(argv: list[str], out: Path, wait_idle: Callable[[float], bool] | None = None,
               exit_status: list[int] | None = None) -> Iterator[ExportTick]:
    """(Worker thread.) Run the export command; yields progress every :data:`POLL_S` seconds and
    returns an :class:`ExportResult`. Closing the generator stops the command (SIGTERM).

    ``wait_idle(timeout)`` is waited for first (prompts still being computed); the command's
    exit status is appended to ``exit_status``, also when the generator was closed.
    """
    t0 = time.perf_counter()
    if wait_idle is not None:
        while not wait_idle(POLL_S):
            yield ExportTick(time.perf_counter() - t0, "waiting")
    with tempfile.TemporaryFile() as stderr:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        flags = getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)  # Windows
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr,
                                stdin=subprocess.DEVNULL, env=env, creationflags=flags)
        _lower_priority(proc.pid)
        counts = _ProgressReader(proc.stdout)
        finished = False
        try:
            while proc.poll() is None:
                yield ExportTick(time.perf_counter() - t0, "exporting", *counts.latest)
                try:
                    proc.wait(POLL_S)
                except subprocess.TimeoutExpired:
                    pass
            finished = True
        finally:
            if not finished:
                _stop(proc)
            if exit_status is not None:
                exit_status.append(proc.returncode)
            counts.join(STOP_GRACE_S)
        if proc.returncode == 0:  # the final count, before the result
            yield ExportTick(time.perf_counter() - t0, "exporting", *counts.latest)
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        errors = _lines(err, "error:")
        last = (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        message = errors[-1] if errors else last
        raise StoreError(one_line(f"export failed: {message}"))
    return ExportResult(out, seconds, _lines(err, "warning:"))


class _ProgressReader(threading.Thread):
    """Reads the command's stdout to its end, keeping the latest ``(done, total)``."""

    def __init__(self, stream):
        super().__init__(name="export-progress", daemon=True)
        self.stream = stream
        self.latest: tuple[int, int] = (0, 0)
        self.start()

    def run(self) -> None:
        with self.stream:
            for raw in self.stream:
                counts = parse_progress_line(raw.decode(errors="replace"))
                if counts is not None:
                    self.latest = counts


def _lower_priority(pid: int) -> None:
    """Let the viewer go first when the export and the GUI compete for the CPU (POSIX)."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, EXPORT_NICENESS)
    except (AttributeError, OSError):
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the command cleans up as on Ctrl-C), then a kill if it does not end."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        self._exit_status: list[int] = []  # the running export's, once it ended
        self._out: Path | None = None
        form = QFormLayout(self)
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(FORMATS))
        self.format_combo.currentTextChanged.connect(lambda _fmt: self._propose_output())
        form.addRow("Format", self.format_combo)
        row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("<project>-<format> beside the project")
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
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
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
        self._auto_out = str(default_output(session.store.path, self.format_combo.currentText()))
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

        Arguments left out are read from the dock's controls.
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
            out = Path(out) if out is not None else Path(self.out_edit.text().strip() or
                                                         default_output(session.store.path, fmt))
            approved_only = self.approved_check.isChecked() if approved_only is None else approved_only
            overwrite = self.overwrite_check.isChecked() if overwrite is None else overwrite
            if self.before_export is not None:
                self.before_export()
            argv = export_command(session.store.path, fmt, out, approved_only=approved_only,
                                  overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._show(str(exc), error=True)
            self.on_error(exc)
            return None
        self._exit_status = []
        self._ended = False  # the worker returned or failed
        worker = create_worker(run_export, argv, out, session.wait_idle, self._exit_status,
                               _worker_class=RunWorker, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_tick)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(self._on_worker_finished)
        self.worker = worker
        self._fmt, self._out, self._started = fmt, out, time.perf_counter()
        self._pbar = progress(total=0, desc=f"export to {fmt}")
        self.export_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the command reports its frame count
        self.progress_bar.setVisible(True)
        self._show(f"exporting to {fmt}: {out}")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the export; nothing is left at the output (a previous export stays)."""
        if self.worker is not None:
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
        text = f"wrote {result.out} in {result.seconds:.1f} s"
        if result.warnings:
            text += "\n" + "\n".join(f"warning: {w}" for w in result.warnings)
        self._show(text)

    def _on_failed(self, exc: BaseException) -> None:
        self._ended = True
        self._show(str(exc), error=True)
        self.on_error(exc)

    def _on_worker_finished(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None and worker.abort_requested and not self._ended:
            # quit(): the command was stopped, unless it had just finished by itself
            done = self._exit_status == [0]
            seconds = time.perf_counter() - self._started
            self._on_returned(ExportResult(self._out, seconds, cancelled=not done))
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setVisible(False)
        self.export_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _show(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #ff6b6b;" if error else "")
