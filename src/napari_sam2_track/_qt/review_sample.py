"""The Review dock's sampled QC: the chosen masklet's sample, each frame's judgment, the verdict.

:class:`SampleBox` shows the current sample of a masklet (:mod:`napari_sam2_track.review.sampling`)
as a list of frames — ✓ passed, ✗ failed, · to judge — that jump to their frame when clicked;
**Draw sample** draws one (the schema's size, a dataset's check frames mixed in), **Pass** and
**Fail** judge the selected frame (else the frame shown). Reading and writing run on workers;
none takes the project's write lock, so they work as well when another process writes the
project (the session then has it read-only: :func:`as_now`).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

MARKS = {"passed": "✓", "failed": "✗", "pending": "·"}


def as_now(store):
    """The store to record QC decisions on: the session's own; or, when it has the project
    read-only because another process writes it, the project opened afresh (without the
    lock), so that a decision sees the objects and runs as they are now and is tied to a run
    in flight (which then invalidates it, ``review/qc.py``)."""
    if not store.read_only:
        return store
    from ..project import ProjectStore

    return ProjectStore.open(store.path, mode="r")


def load_sample(store, obj_id: int, start: int, end: int):
    """``(sample, verdict)`` of the masklet's current sample, ``(None, None)`` without one."""
    from ..review.models import read_review
    from ..review.sampling import current_sample, verdict

    state = read_review(store)
    sample = current_sample(state, obj_id, start, end)
    return (sample, verdict(state, sample)) if sample is not None else (None, None)


def draw(store, obj_id: int, start: int, end: int, reviewer: str | None):
    """Draw and record a sample of the masklet (check frames of a dataset mixed in)."""
    from ..dataset.checks import hidden_frames
    from ..review.sampling import draw_sample

    store = as_now(store)
    draw_sample(store, obj_id, start, end, reviewer=reviewer,
                extra_frames=hidden_frames(store.path, obj_id, start, end))
    return load_sample(store, obj_id, start, end)


def judge(store, obj_id: int, start: int, end: int, frame: int, status: str, reviewer: str | None):
    from ..review.sampling import judge_frame

    judge_frame(as_now(store), obj_id, frame, status, reviewer=reviewer)
    return load_sample(store, obj_id, start, end)


class SampleBox(QWidget):
    """Sampled QC of one masklet. Signals: ``frame_clicked(frame)``, ``judged()`` (a frame or
    a verdict was recorded: the dock reads the project again)."""

    frame_clicked = Signal(int)
    judged = Signal()

    def __init__(self, on_error: Callable[[BaseException], None], current_frame: Callable[[], int],
                 reviewer: Callable[[], str | None]):
        super().__init__()
        self._on_error, self._current_frame, self._reviewer = on_error, current_frame, reviewer
        self.store = None
        self.masklet: tuple[int, int, int] | None = None
        self.sample = self.verdict = None
        self._token = 0
        self._worker = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.verdict_label = QLabel("")
        self.verdict_label.setWordWrap(True)
        self.frames = QListWidget()
        self.frames.setFlow(QListWidget.Flow.LeftToRight)
        self.frames.setWrapping(True)
        self.frames.setMaximumHeight(70)
        self.frames.itemClicked.connect(lambda item: self.frame_clicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        buttons = QHBoxLayout()
        self.draw_button = QPushButton("Draw sample")
        self.draw_button.setToolTip("Draw frames of the masklet at random (seed recorded), flagged frames included")
        self.pass_button = QPushButton("Pass frame")
        self.fail_button = QPushButton("Fail frame")
        self.draw_button.clicked.connect(self.draw_sample)
        self.pass_button.clicked.connect(lambda: self.judge("satisfactory"))
        self.fail_button.clicked.connect(lambda: self.judge("unsatisfactory"))
        for b in (self.draw_button, self.pass_button, self.fail_button):
            buttons.addWidget(b)
        layout.addWidget(self.verdict_label)
        layout.addWidget(self.frames)
        layout.addLayout(buttons)
        self._show(None, None)

    def set_masklet(self, store, masklet: tuple[int, int, int] | None) -> None:
        """Show the sample of ``masklet`` ``(object, start, end)`` of ``store`` (read on a worker)."""
        self.store, self.masklet = store, masklet
        if store is None or masklet is None:
            self._token += 1
            self._show(None, None)
            return
        self._run(load_sample, store, *masklet)

    def draw_sample(self) -> None:
        if self.store is not None and self.masklet is not None:
            self._run(draw, self.store, *self.masklet, self._reviewer(), changed=True)

    def chosen_frame(self) -> int:
        """The selected frame of the sample, else the frame shown."""
        item = self.frames.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else self._current_frame()

    def judge(self, status: str) -> None:
        if self.store is None or self.masklet is None or self.sample is None:
            return
        self._run(judge, self.store, *self.masklet, self.chosen_frame(), status, self._reviewer(), changed=True)

    # ------------------------------------------------------------------ internals
    def _run(self, func, *args, changed: bool = False) -> None:
        from napari.qt.threading import thread_worker

        self._token += 1
        token = self._token
        worker = thread_worker(func, start_thread=False)(*args)
        worker.returned.connect(lambda result: self._loaded(token, result, changed))
        worker.errored.connect(self._on_error)
        self._worker = worker
        worker.start()

    def _loaded(self, token: int, result, changed: bool) -> None:
        try:
            if token == self._token:
                self._show(*result)
        except RuntimeError:  # the dock was closed meanwhile
            return
        if changed:
            self.judged.emit()

    def _show(self, sample, verdict) -> None:
        self.sample, self.verdict = sample, verdict
        selected = self.frames.currentItem().data(Qt.ItemDataRole.UserRole) if self.frames.currentItem() else None
        self.frames.clear()
        self.draw_button.setEnabled(self.masklet is not None)
        self.pass_button.setEnabled(sample is not None)
        self.fail_button.setEnabled(sample is not None)
        if sample is None:
            self.verdict_label.setText("no sample drawn for this masklet" if self.masklet else "")
            return
        state = {f: "passed" for f in verdict.passed} | {f: "failed" for f in verdict.failed}
        for f in sample.frames:
            item = QListWidgetItem(f"{MARKS[state.get(f, 'pending')]} {f}")
            item.setData(Qt.ItemDataRole.UserRole, f)
            item.setToolTip(f"frame {f}: {state.get(f, 'to judge')}")
            self.frames.addItem(item)
            if f == selected:
                self.frames.setCurrentItem(item)
        judged = len(verdict.passed) + len(verdict.failed)
        self.verdict_label.setText(
            f"{verdict.status}: {len(verdict.passed)} of {judged} judged frames pass, "
            f"{len(verdict.pending)} to judge (rule: at least {verdict.rule:.0%}; seed {sample.seed})")
