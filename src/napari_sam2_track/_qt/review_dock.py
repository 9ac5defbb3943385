"""Review dock: the track table, the timeline, QC decisions, the correction queue and the report.

A thin view over :mod:`napari_sam2_track.review` and the open session (shared through the
viewer's hub). The project is read by :func:`.review_data.load_review_data` on napari's
``thread_worker``; the GUI thread only draws the result. It is read again when the session
says labels, objects, keyframes or a run changed (not during a run: once it has finished).

Corrections (a prompt on a tracked frame re-propagates one segment; Undo) are in
:mod:`.review_correct`, second opinions in :mod:`.review_second`; the keys
(:mod:`.review_keys`) are bound on the viewer only while the dock is shown.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QFrame,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from .. import settings
from ..review import qc
from ._gui_thread import SessionLink
from ._hub import hub_for, report
from ._widgets import ScrollDock, StatusLine
from .review_correct import CorrectBox
from .review_history import HistoryBox
from .review_crops import CropStrip, masklet_crops
from .review_data import ObjectTrack, ReviewData, load_review_data
from .review_keys import ReviewKeys, help_text
from .review_notes import DecisionList, FlagList, flag_at, flag_text
from .review_report import ReportBox, ReportPlot
from .review_sample import SampleBox, as_now
from .review_table import TABLE_COLUMNS, fill_object_table
from .review_second import SecondOpinionBox
from .review_timeline import LEGEND, ReviewTimeline, timepoint_window, volume_axes

KEYS = help_text()

REFRESH_DELAY_MS = 300


def read_review_data(store, plot: ReportPlot) -> ReviewData:
    """:func:`.review_data.load_review_data` with the report plot drawn (on a worker)."""
    data = load_review_data(store)
    data.report_plot = plot.render(data.report_rows)
    return data


class ReviewWidget(ScrollDock):
    """Review object tracks, record QC decisions and see the effort report.

    Signals:
        refreshed(): the dock shows freshly read data.
    """

    refreshed = Signal()

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.hub = hub_for(napari_viewer)
        self.data: ReviewData | None = None
        self.selected: int | None = None
        self.last_error: str | None = None
        self.loading = False
        self._pending = False
        self._worker = None
        self._link = SessionLink()
        self._plot = ReportPlot()  # used by one reading worker at a time
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.setToolTip("Review tracks, approve or reject masklets.\n\nKeys:\n" + KEYS)
        self._build()
        self.viewer.dims.events.current_step.connect(self._on_step)
        self.keys = ReviewKeys(self)
        self.hub.session_changed.connect(self._on_session_changed)
        self._on_session_changed(self.hub.session)

    # --------------------------------------------------------------- layout
    def _build(self) -> None:
        layout = QVBoxLayout()
        layout.setContentsMargins(0, 0, 0, 0)
        tracks = QWidget()
        tracks.setLayout(layout)
        self.status_label = self.message
        self.status_label.set_text("open a project in the Prompt and Propagate dock")

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)  # the id column names the row; room for QC and flags
        self.table.cellClicked.connect(self._on_cell_clicked)
        self.table.setMinimumHeight(130)  # the header and about four objects
        self.table.setMaximumHeight(220)
        layout.addWidget(self.table)

        self.timeline = ReviewTimeline()
        self.timeline.frame_clicked.connect(self._on_timeline_clicked)
        layout.addWidget(self.timeline)
        legend = StatusLine(LEGEND, lines=2)
        legend.setObjectName("legend")
        layout.addWidget(legend)

        flags = QHBoxLayout()
        self.prev_flag_button = QPushButton("◀ flag (,)")
        self.next_flag_button = QPushButton("flag (.) ▶")
        self.prev_flag_button.clicked.connect(lambda: self.next_flag(-1))
        self.next_flag_button.clicked.connect(lambda: self.next_flag(1))
        flags.addWidget(self.prev_flag_button)
        flags.addWidget(self.next_flag_button)
        layout.addLayout(flags)
        #: why the frame shown is flagged (for the selected object)
        self.flag_label = StatusLine("", lines=2)
        layout.addWidget(self.flag_label)
        self.flag_list = FlagList()
        self.flag_list.frame_clicked.connect(self.go_to_frame)
        layout.addWidget(self.flag_list)
        self.add_section("Objects and flags", tracks)

        self.correct_box = CorrectBox(self._error)
        self.correct_box.segment_changed.connect(
            lambda obj, a, b, running: self.timeline.set_segment(None if obj < 0 else obj, a, b, running))
        self.correct_box.corrected.connect(lambda *_: self.schedule_refresh())
        self.correct_box.setTitle("")
        self.correct_box.setFlat(True)
        self.add_section("Correct", self.correct_box)
        self.history_box = HistoryBox(self._error)
        self.history_box.setTitle("")
        self.history_box.setFlat(True)
        self.add_section("History", self.history_box, expanded=False)
        self.second_box = SecondOpinionBox(self.viewer, self._error)
        self.second_box.changed.connect(self.schedule_refresh)
        self.add_section("Second opinion", self.second_box, expanded=False)

        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        self.masklet_combo = QComboBox()
        self.masklet_combo.setToolTip("The masklet to decide on: by default the span under the current frame")
        self.masklet_combo.currentIndexChanged.connect(lambda *_: self._update_crops())
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(0, 24)
        self.samples_spin.setValue(6)
        self.samples_spin.setToolTip("Frames sampled over the masklet, shown as crops around the object")
        self.samples_spin.valueChanged.connect(lambda *_: self._update_crops())
        self.crops = CropStrip()
        self.crops.frame_clicked.connect(self.go_to_frame)
        self._crops_token = 0
        self.reviewer_edit = QLineEdit(settings.reviewer() or qc.default_reviewer())
        self.reviewer_edit.setToolTip("Your name on the decisions (remembered)")
        self.comment_edit = QLineEdit()
        self.comment_edit.setPlaceholderText("comment (optional)")
        buttons = QHBoxLayout()
        self.approve_button = QPushButton("Approve")
        self.reject_button = QPushButton("Reject")
        self.approve_button.clicked.connect(lambda: self.decide("satisfactory"))
        self.reject_button.clicked.connect(lambda: self.decide("unsatisfactory"))
        buttons.addWidget(self.approve_button)
        buttons.addWidget(self.reject_button)
        queue = QHBoxLayout()
        self.prev_correction_button = QPushButton("◀ correction")
        self.next_correction_button = QPushButton("correction ▶")
        self.prev_correction_button.clicked.connect(lambda: self.next_correction(-1))
        self.next_correction_button.clicked.connect(lambda: self.next_correction(1))
        self.queue_label = QLabel("")
        queue.addWidget(self.prev_correction_button)
        queue.addWidget(self.next_correction_button)
        form.addRow("masklet", self.masklet_combo)
        form.addRow("samples", self.samples_spin)
        crops_area = QScrollArea()  # six crops are wider than the dock: they scroll sideways
        crops_area.setWidget(self.crops)
        crops_area.setWidgetResizable(True)
        crops_area.setFrameShape(QFrame.Shape.NoFrame)
        crops_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        crops_area.setFixedHeight(132)
        crops_area.setMinimumWidth(100)
        form.addRow(crops_area)
        form.addRow("reviewer", self.reviewer_edit)
        form.addRow("comment", self.comment_edit)
        form.addRow(buttons)
        form.addRow("queue", self.queue_label)
        form.addRow("", queue)
        self.decision_list = DecisionList()
        self.decision_list.frame_clicked.connect(self.go_to_frame)
        form.addRow(self.decision_list)
        self.add_section("QC", box)
        self.sample_box = SampleBox(self._error, lambda: self.current_frame,
                                    lambda: self.reviewer_edit.text().strip() or None)
        self.sample_box.frame_clicked.connect(self.go_to_frame)
        self.sample_box.judged.connect(self.refresh)
        self.add_section("Sampled QC", self.sample_box)

        self.report_box = ReportBox()
        self.report_table = self.report_box.table
        self.report_box.setTitle("")
        self.report_box.setFlat(True)
        self.add_section("Report", self.report_box)
        keys = StatusLine(KEYS, lines=len(KEYS.splitlines()))
        keys.setStyleSheet("font-family: monospace")
        self.add_section("Keys (while this dock is shown)", keys, expanded=False)
        self.content_layout.addStretch(1)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.approve_button, self.reject_button, self.next_flag_button, self.prev_flag_button,
                  self.next_correction_button, self.prev_correction_button, self.masklet_combo):
            w.setEnabled(on)

    # -------------------------------------------------------------- session
    @property
    def session(self):
        return self.hub.session

    def _on_session_changed(self, session) -> None:
        self._link.disconnect_all()
        self.correct_box.attach(session)
        self.history_box.attach(session)
        self.second_box.attach(session)
        self.data = None
        self.selected = None
        if session is None:
            self._show(None)
            return
        ev = session.events
        for signal in (ev.objects_changed, ev.keyframes_changed, ev.run_finished):
            self._link.connect(signal, lambda *_: self.schedule_refresh())
        self._link.connect(ev.labels_changed, self._on_labels_changed)
        self._link.connect(ev.active_object_changed, self._on_active_changed)
        self.selected = session.active_id
        self.refresh()

    def _on_labels_changed(self, *_: Any) -> None:
        session = self.session
        if session is not None and not session.running:  # a run refreshes once it has finished
            self.schedule_refresh()

    def _on_active_changed(self, obj_id: int | None) -> None:
        if obj_id != self.selected:
            self._select(obj_id)

    def schedule_refresh(self) -> None:
        """Read the project again shortly (changes in a burst cause one read)."""
        self._timer.start()

    def refresh(self) -> None:
        """Read the project on a worker; the widgets are redrawn when it is done."""
        session = self.session
        if session is None:
            return
        if self.loading:
            self._pending = True
            return
        from napari.qt.threading import thread_worker

        self.loading = True
        self.status_label.setText("reading the review state…")
        store = session.store
        worker = thread_worker(read_review_data, start_thread=False)(store, self._plot)
        worker.returned.connect(lambda data, s=session: self._on_loaded(s, data))
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(self._on_load_finished)
        self._worker = worker
        worker.start()

    def _on_loaded(self, session, data: ReviewData) -> None:
        if session is not self.session:
            return
        try:
            self._show(data)
        except RuntimeError as exc:  # the dock was closed while the project was read
            if "deleted" in str(exc):
                return
            raise
        self.refreshed.emit()

    def _on_load_error(self, exc: BaseException) -> None:
        self._error(exc)
        self.status_label.set_text(f"could not read the review state: {exc}", error=True)

    def _on_load_finished(self) -> None:
        self.loading = False
        self._worker = None
        if self._pending:
            self._pending = False
            self.refresh()

    def _error(self, exc: BaseException) -> None:
        self.last_error = str(exc)
        report(exc)

    # --------------------------------------------------------------- drawing
    def _show(self, data: ReviewData | None) -> None:
        self.data = data
        self.timeline.set_data(data)
        self._fill_table()
        self._fill_report()
        self._fill_masklets()
        self._set_enabled(data is not None and bool(data.tracks))
        if data is None:
            self.status_label.setText("open a project in the Prompt and Propagate dock")
            self.queue_label.setText("")
            return
        n_flags = sum(len(t.flags) for t in data.tracks)
        held_by = getattr(self.session, "held_by", None)
        store = self.session.store if self.session is not None else None
        if store is not None and store.is_volume:
            n_t, n_z = store.volume_shape[:2]
            size = f"{n_t} timepoint(s) x {n_z} slices"
        else:
            size = f"{data.num_frames} frames"
        self.status_label.setText(
            (f"Read-only: masks cannot be edited while {held_by} holds the project; QC "
             "decisions are recorded. " if held_by else "")
            + f"{len(data.tracks)} objects, {size}, {n_flags} flagged runs")
        self.queue_label.setText(f"{len(data.queue)} to correct")
        self.timeline.set_window(self._timeline_window())
        self.timeline.set_current_frame(self.current_frame)
        self.timeline.set_selected(self.selected)
        self._update_undo()
        self._update_notes()

    def _update_notes(self) -> None:
        """The selected object's flags (with reasons) and decisions (with reviewers)."""
        track = self.track
        store = self.session.store if self.session is not None else None
        self.flag_list.set_flags(track.flags if track is not None else [], store)
        statuses = [] if self.data is None or self.selected is None else \
            [s for s in self.data.state.statuses if s.decision.object == self.selected]
        self.decision_list.set_decisions(statuses)
        self._show_flag_reason()

    def _show_flag_reason(self) -> None:
        track, frame, m = self.track, self.current_frame, self.chosen_masklet()
        self.second_box.set_target(self.selected, frame, track.flags if track else [], m and m[1:])
        if track is None:
            self.flag_label.set_text("")
            return
        flag = flag_at(track.flags, frame)
        store = self.session.store if self.session is not None else None
        self.flag_label.set_text(f"flagged: {flag_text(flag, store)}" if flag is not None else
                                 f"object {track.id}, frame {frame}: not flagged")

    def _update_undo(self) -> None:
        track = self.track
        self.correct_box.set_selected(self.selected, track.undo if track is not None else None)
        self.history_box.set_selected(self.selected)

    def _fill_table(self) -> None:
        fill_object_table(self.table, self.data.tracks if self.data is not None else [],
                          self.session.store if self.session is not None else None)
        self._highlight_row()

    def _fill_report(self) -> None:
        data = self.data
        if data is None:
            self.report_box.show_report([], None)
        else:
            self.report_box.show_report(data.report_rows, data.report_plot, data.report_error)

    def _fill_masklets(self) -> None:
        combo = self.masklet_combo
        combo.blockSignals(True)
        combo.clear()
        track = self.track
        if track is not None:
            for s in track.spans:
                combo.addItem(f"object {track.id}: frames {s.start}-{s.end}", (s.start, s.end))
            self._choose_masklet_at(self.current_frame)
        combo.blockSignals(False)
        self._update_crops()

    def _update_crops(self) -> None:
        """Crops of the chosen masklet on sampled frames, read on a worker."""
        from napari.qt.threading import thread_worker

        self._crops_token += 1
        masklet, session = self.chosen_masklet(), self.session
        self.sample_box.set_masklet(session.store if session is not None else None, masklet)
        if masklet is None or session is None or self.samples_spin.value() == 0:
            self.crops.set_crops([])
            return
        token = self._crops_token
        worker = thread_worker(masklet_crops, start_thread=False)(
            session.source, session.store, *masklet, count=self.samples_spin.value())
        worker.returned.connect(lambda crops: self._show_crops(token, crops))
        worker.errored.connect(self._error)
        self._crops_worker = worker
        worker.start()

    def _show_crops(self, token: int, crops: list) -> None:
        try:
            if token == self._crops_token:
                self.crops.set_crops(crops)
        except RuntimeError:  # the dock was closed while the crops were read
            pass

    def _choose_masklet_at(self, frame: int) -> None:
        for i in range(self.masklet_combo.count()):
            a, b = self.masklet_combo.itemData(i)
            if a <= frame <= b:
                self.masklet_combo.setCurrentIndex(i)
                return

    def _highlight_row(self) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(Qt.ItemDataRole.UserRole) == self.selected:
                self.table.selectRow(row)
                return
        self.table.clearSelection()

    # ------------------------------------------------------------ navigation
    @property
    def current_frame(self) -> int:
        """The frame the viewer shows (a volume's plane ``t * Z + z``; the session's, while the
        viewer has no time axis)."""
        axes = self._plane_axes
        if axes is not None:
            return axes.plane(self.viewer.dims.current_step[: axes.lead])
        if self.viewer.dims.ndim >= 3:
            return int(self.viewer.dims.current_step[0])
        return self.session.current_frame if self.session is not None else 0

    @property
    def _plane_axes(self):
        return volume_axes(self.session, self.viewer.dims.ndim)

    def _timeline_window(self) -> tuple[int, int] | None:
        return timepoint_window(self._plane_axes, self.viewer.dims.current_step)

    @property
    def track(self) -> ObjectTrack | None:
        if self.data is None or self.selected is None:
            return None
        return self.data.track(self.selected)

    def _on_step(self, *_: Any) -> None:
        try:
            self.timeline.isVisible()
        except RuntimeError:  # the dock was deleted
            self.viewer.dims.events.current_step.disconnect(self._on_step)
            return
        frame = self.current_frame
        self.timeline.set_window(self._timeline_window())
        self.timeline.set_current_frame(frame)
        self._choose_masklet_at(frame)
        self._show_flag_reason()

    def go_to_frame(self, frame: int) -> None:
        """Show ``frame`` in the viewer (and tell the session)."""
        frame = int(frame)
        if self.session is not None:
            self.session.go_to_frame(frame)
        axes = self._plane_axes
        if axes is not None and self.current_frame != frame:
            for axis, step in enumerate(axes.coords(frame)):
                self.viewer.dims.set_current_step(axis, step)
        elif self.viewer.dims.ndim >= 3 and self.current_frame != frame:
            self.viewer.dims.set_current_step(0, frame)

    def _select(self, obj_id: int | None) -> None:
        self.selected = obj_id
        if self.session is not None and obj_id is not None and self.session.active_id != obj_id:
            self.session.set_active(obj_id)
        self.timeline.set_selected(obj_id)
        self._highlight_row()
        self._fill_masklets()
        self._update_undo()
        self._update_notes()

    def select_object(self, obj_id: int) -> None:
        """Select ``obj_id`` and show its worst flagged frame (else its first frame)."""
        self._select(obj_id)
        track = self.track
        if track is None:
            return
        worst = track.worst_flag()
        frame = worst.frame if worst is not None else track.first_frame
        if frame is not None:
            self.go_to_frame(frame)

    def _on_cell_clicked(self, row: int, _col: int) -> None:
        try:
            self.select_object(int(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole)))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(exc)

    def _on_timeline_clicked(self, obj_id: int, frame: int) -> None:
        try:
            self._select(obj_id)
            self.go_to_frame(frame)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._error(exc)

    def next_flag(self, step: int = 1) -> int | None:
        """Go to the next (``step`` 1) or previous (-1) flagged frame of the selected object,
        wrapping around; returns the frame."""
        track = self.track
        if track is None or not track.flags:
            return None
        frames = track.flag_frames()
        here = self.current_frame
        if step > 0:
            later = [f for f in frames if f > here]
            frame = later[0] if later else frames[0]
        else:
            earlier = [f for f in frames if f < here]
            frame = earlier[-1] if earlier else frames[-1]
        self.go_to_frame(frame)
        return frame

    # ------------------------------------------------------------------ QC
    def chosen_masklet(self) -> tuple[int, int, int] | None:
        """``(object, start, end)`` of the masklet the QC buttons act on."""
        if self.selected is None or self.masklet_combo.currentIndex() < 0:
            return None
        a, b = self.masklet_combo.currentData()
        return self.selected, a, b

    def decide(self, status: str) -> None:
        """Record ``status`` on the chosen masklet and refresh. The decision is written (and
        ``fsync``ed) on a worker, before the dock reads the project again."""
        masklet = self.chosen_masklet()
        session = self.session
        if masklet is None or session is None:
            return
        from napari.qt.threading import thread_worker

        obj, a, b = masklet
        reviewer = self.reviewer_edit.text().strip() or None
        comment = self.comment_edit.text()
        settings.remember_reviewer(reviewer)
        store = session.store

        def record():  # on the worker: no write lock, so also while another process writes
            return qc.decide(as_now(store), obj, a, b, status, reviewer=reviewer, comment=comment)

        worker = thread_worker(record, start_thread=False)()  # logs the review event too
        worker.returned.connect(lambda _d: (self.comment_edit.clear(), self.refresh()))
        worker.errored.connect(self._error)
        self._decision_worker = worker
        worker.start()

    def next_correction(self, step: int = 1) -> tuple[int, int, int] | None:
        """Go to the next (or previous) masklet of the correction queue; returns it."""
        if self.data is None or not self.data.queue:
            return None
        obj = self.selected if self.selected is not None else -1
        pick = qc.step_in_queue(self.data.queue, obj, self.current_frame, backwards=step <= 0)
        d = pick.decision
        self._select(d.object)
        self.go_to_frame(d.start)
        self._choose_masklet_at(d.start)
        return d.object, d.start, d.end

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._link.disconnect_all()
        self.correct_box.detach()
        self.history_box.detach()
        self.second_box.cancel()
        self.keys.unbind()
        super().closeEvent(event)
