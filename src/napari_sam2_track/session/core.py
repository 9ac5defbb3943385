"""Interactive annotation session: the Qt-free, evented model behind the napari docks.

An :class:`AnnotationSession` ties together a frame source, a project store, the annotation
schema, the object list and (once a model is set) a live
:class:`~napari_sam2_track.engine.tracker.StreamingTracker`. Every user action of the docks is
one method here, and every change is announced on ``session.events``
(:class:`~.events.SessionEvents`), so the same workflow can be scripted, tested without Qt, and
shown by any number of views::

    from napari_sam2_track.session import AnnotationSession

    session = AnnotationSession.open("movie.mp4")          # project: movie.zarr beside it
    session.set_model(load_model("tiny"))
    cell = session.add_object("left cell")
    mask = session.add_click(frame=0, x=120, y=88, positive=True)   # waits for the mask
    session.request_click(frame=0, x=140, y=90)                     # returns at once
    for progress in session.propagate_iter("forward"):
        print(progress.frame, progress.fps)

Model work for prompts runs on the session's compute thread (:mod:`.compute`): ``request_*``
methods check the prompt, record it and return a future at once; the mask is written to the
project and announced (``labels_changed``) when ready. A burst of prompts on one object and
frame is coalesced (the newest wins) and a result superseded by a newer prompt is dropped. The
``add_click``/``set_box``/``set_prompt`` methods are the same requests, waited for.

A click, followed through the parts: a layer edit (:func:`~.layers.apply_clicks`) calls
:meth:`AnnotationSession.request_prompt`, which records it in the
:class:`~.prompt_book.PromptBook` and queues its job (:class:`~.prompt_jobs.PromptJobs`) on the
compute thread of the :class:`~.engine.SessionEngine`; the job runs
:meth:`~napari_sam2_track.engine.tracker.StreamingTracker.add_points` on the live tracker,
writes the mask to the project and emits ``labels_changed``. A propagation (:mod:`.run`) is
planned here and driven through :func:`~napari_sam2_track.pipeline.track_in_store`.

Coordinates are pixels, ``x`` to the right and ``y`` down (napari's layer coordinates are
``(t, y, x)``; the docks convert). The store is the record: objects, computed prompts, keyframe
masks and hand edits are written to it as they happen.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ProjectLockedError, PromptError, StoreError
from ..passes import Plan, plan_passes
from ..project import ProjectStore
from ..project.versions import edit_frame
from ..prompts import Prompt
from .activity import ActivityLog
from .corrections import Corrections
from .correcting import CorrectionsMixin
from .engine import SessionEngine
from .events import Box, Click, KeyframePrompt, PromptKey, SessionEvents
from .labels import StoreLabelsArray, default_store_path, read_plane
from .layers import VIDEO_AXES, PlaneAxes
from .objects import ObjectsMixin
from .prompt_book import PromptBook, plane_prompts
from .prompt_jobs import PromptJobs
from .run import PropagationRun, RunReport, propagate

if TYPE_CHECKING:
    from ..engine.models import LoadedModel
    from ..engine.tracker import StreamingTracker
    from ..schema import Schema
    from ..sources import FrameSource

__all__ = ["AnnotationSession"]


def _finished(result: Any) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


def describe_writer(store_path: str | Path) -> str:
    """Who holds the write lock of the project at ``store_path``, in words."""
    from ..project.lock import live_holder

    holder = live_holder(store_path)
    return holder.describe() if holder is not None else "another process"


class AnnotationSession(ObjectsMixin, CorrectionsMixin):
    """Objects, keyframe prompts, propagation and edits of one video's project.

    It is made of parts that each own one concern: the prompts as last requested
    (:class:`~.prompt_book.PromptBook`, ``prompt_book``), the model side
    (:class:`~.engine.SessionEngine`, ``engine``: model, live tracker, compute thread), the
    corrections (:class:`~.corrections.Corrections`) and the interaction log
    (:class:`~.activity.ActivityLog`, ``activity``). The project is written under
    ``store_lock`` (one writer at a time: GUI edits, the compute thread).

    Args:
        source: a :class:`~napari_sam2_track.sources.FrameSource`.
        store: the open :class:`~napari_sam2_track.project.ProjectStore` for that source.
        model: optional :class:`~napari_sam2_track.engine.models.LoadedModel`; prompts that
            need the model raise :class:`ModelError` until :meth:`set_model` is called.
        prefetch: compute the embedding of the current frame ahead (see
            :meth:`set_current_frame`).
    """

    def __init__(self, source: "FrameSource", store: ProjectStore, model: "LoadedModel | None" = None,
                 *, prefetch: bool = True):
        expected = (len(source), source.height, source.width)
        if tuple(store.shape) != expected:
            raise StoreError(
                f"project {store.path} is for a {store.shape[0]}x{store.shape[1]}x"
                f"{store.shape[2]} video, not {expected[0]}x{expected[1]}x{expected[2]}; "
                "choose another project path"
            )
        self.source = source
        self.store = store
        self.events = SessionEvents()
        self.prefetch_enabled = prefetch
        self.store_lock = threading.RLock()  # one writer at a time (GUI edits, compute thread)
        self._running = threading.Lock()
        self._closed = False
        self._current_frame = 0
        self.prompt_book = PromptBook(plane_prompts(store).prompts)
        self.engine = SessionEngine(source, store, self._on_compute_error, self.events.busy_changed.emit)
        #: the interaction log of this session (``review/events.jsonl``; see :mod:`.activity`)
        self.activity = ActivityLog(store, on_error=self._on_compute_error)
        self.corrections = self._new_corrections()
        self.prompt_jobs = PromptJobs(store, self.store_lock, self.events, self.engine, self.prompt_book,
                                      self.corrections, closed=lambda: self._closed)
        ids = store.object_ids()
        self.active_id: int | None = ids[0] if ids else None
        #: who writes the project while this session has it read-only (see :meth:`open`)
        self.held_by: str | None = None
        if model is not None:
            self.set_model(model)

    def _new_corrections(self) -> Corrections:
        """The session's corrections (a volume session re-propagates along z and t)."""
        return Corrections(self.store, self.store_lock, self.events, self.activity, self.engine,
                           self.prompt_book)

    # ---------------------------------------------------------------- creation
    @classmethod
    def open(
        cls,
        video: Any,
        store_path: str | Path | None = None,
        *,
        schema: "Schema | None" = None,
        model: "LoadedModel | None" = None,
        name: str = "annotations",
        prefetch: bool = True,
        **source_options: Any,
    ) -> "AnnotationSession":
        """Open ``video`` (path, array or FrameSource) and its project (created if missing).

        The project defaults to ``<video stem>.zarr`` beside a video file, and to a temporary
        folder for in-memory arrays. ``schema`` is stored in a new project. A project another
        live process writes (a run tracking, another annotator) opens read-only: QC decisions
        can still be recorded (they need no write lock), edits are refused (:attr:`held_by`
        names the writer).
        """
        from ..pipeline import open_or_create_store
        from ..sources import open_source

        source = open_source(video, **source_options)
        if store_path is None:
            path = video if isinstance(video, (str, Path)) else source.path
            store_path = default_store_path(path, name=name)
        existed = Path(store_path).exists()
        try:
            store = open_or_create_store(store_path, source, resume=True)
        except ProjectLockedError:
            if not existed:
                raise
            return cls.open_read_only(source, store_path, model=model, prefetch=prefetch)
        if schema is not None and (not existed or store.meta.get("schema") is None):
            store.set_schema(schema)
        return cls(source, store, model=model, prefetch=prefetch)

    #: how the layers' leading coordinates name a frame (a volume session: a plane)
    plane_axes: PlaneAxes = VIDEO_AXES

    @classmethod
    def open_read_only(cls, source: "FrameSource", store_path: str | Path, *,
                       model: "LoadedModel | None" = None, prefetch: bool = True
                       ) -> "AnnotationSession":
        """The session of a project another process writes: read-only, :attr:`held_by` set."""
        store = ProjectStore.open(store_path, mode="r")
        try:
            session = cls(source, store, model=model, prefetch=prefetch)
        except BaseException:
            store.close()
            raise
        session.held_by = describe_writer(store_path)
        return session

    @property
    def read_only(self) -> bool:
        """Whether masks, prompts and objects cannot be changed (another process writes)."""
        return self.store.read_only

    def check_writable(self, what: str) -> None:
        """Refuse ``what`` (a change of the project) in a read-only session."""
        if self.store.read_only:
            holder = f" while {self.held_by} writes it" if self.held_by else ""
            raise ProjectLockedError(
                f"cannot {what}: {self.store.path.name} is open read-only{holder}; QC decisions "
                "can still be recorded; open the project again when it is free to edit it")

    @property
    def num_frames(self) -> int:
        return len(self.source)

    def stored_prompt(self, prompt: Prompt) -> Prompt:
        """``prompt`` (on a frame) as the project stores it (a volume's: timepoint and ``z``)."""
        return prompt

    def store_where(self, frame: int) -> tuple[int, int | None]:
        """``(frame, z)`` of a frame (a volume's plane) as the project names prompts."""
        return frame, None

    # ------------------------------------------------------------------ model
    @property
    def model(self) -> "LoadedModel | None":
        return self.engine.model

    def set_model(self, model: "LoadedModel") -> None:
        """Use ``model`` (a loaded SAM 2 model) from now on; stored prompts are re-applied."""
        self.check_idle("change the model", writes=False)
        self.engine.set_model(model)
        self.events.model_changed.emit(model)

    @property
    def has_model(self) -> bool:
        return self.engine.model is not None

    @property
    def tracker(self) -> "StreamingTracker":
        """The live tracker (created on first use, with the stored prompts applied; keeps its
        memory between propagations). Used from the compute thread and during runs."""
        return self.engine.tracker

    # ----------------------------------------------------------------- schema
    @property
    def schema(self) -> "Schema":
        return self.store.schema

    def set_schema(self, schema: "Schema") -> list[int]:
        """Store ``schema``; objects whose category it no longer has move to its first category.

        Returns the ids of the objects that were moved.
        """
        self.check_idle("change the schema")
        names = schema.category_names()
        moved = [o.id for o in self.store.objects if o.category not in names]
        objects = [
            o if o.category in names else o.model_copy(update={"category": names[0]})
            for o in self.store.objects
        ]
        with self.store_lock:
            self.store.set_schema(schema)
            self.store.set_objects(objects)
        self.events.schema_changed.emit(schema)
        self.events.objects_changed.emit()
        return moved

    # ----------------------------------------------------------------- frames
    @property
    def current_frame(self) -> int:
        return self._current_frame

    def set_current_frame(self, frame: int) -> None:
        """The user looks at ``frame``: its image embedding is computed in the background (when
        idle and after a short pause), so a first prompt there costs only the mask decoding."""
        frame = int(frame)
        self._check_frame(frame)
        changed = frame != self._current_frame
        self._current_frame = frame
        if changed:
            self.activity.log("navigate", frames=(frame, frame))
            self.events.current_frame_changed.emit(frame)
        if self.prefetch_enabled and self.has_model and not self.running and not self._closed:
            self.engine.compute.prefetch(lambda: self._prefetch(frame))

    def _prefetch(self, frame: int) -> None:
        if self.running or self._closed or self.model is None:
            return
        self.tracker.prefetch_embedding(frame)
        self.events.embedding_ready.emit(frame)

    def go_to_frame(self, frame: int) -> None:
        """Ask the views to show ``frame`` (``frame_requested``); they answer with
        :meth:`set_current_frame`."""
        self._check_frame(int(frame))
        self.events.frame_requested.emit(int(frame))

    def _check_frame(self, frame: int) -> None:
        if not 0 <= frame < len(self.source):
            raise PromptError(f"frame {frame} is outside the video (0..{len(self.source) - 1})")

    # ---------------------------------------------------------------- prompts
    def prompts(self) -> dict[PromptKey, KeyframePrompt]:
        """Every prompt as last set, by ``(object id, frame)``."""
        return self.prompt_book.snapshot()

    def prompt(self, obj_id: int, frame: int) -> KeyframePrompt | None:
        return self.prompt_book.get((obj_id, frame))

    def clicks(self, obj_id: int, frame: int) -> list[Click]:
        """The clicks ``(x, y, label)`` of an object on a frame."""
        p = self.prompt_book.get((obj_id, frame))
        return list(p.clicks) if p is not None else []

    def box(self, obj_id: int, frame: int) -> Box | None:
        p = self.prompt_book.get((obj_id, frame))
        return p.box if p is not None else None

    def keyframes(self, obj_id: int | None = None) -> list[int]:
        """Prompted frames of the (active) object, sorted."""
        return self.prompt_book.keyframes(self.active_id if obj_id is None else obj_id)

    @property
    def busy(self) -> bool:
        """Whether prompts are waiting for or being computed."""
        return self.engine.compute.busy

    def wait_idle(self, timeout: float | None = None, *, prefetch: bool = False) -> bool:
        """Wait until every requested prompt is computed (``prefetch``: and a running
        embedding prefetch is done); False on timeout."""
        return self.engine.wait_idle(timeout, prefetch=prefetch)

    def request_prompt(
        self,
        frame: int,
        clicks: list[Click] | None = None,
        box: Box | None = None,
        obj_id: int | None = None,
    ) -> Future:
        """Replace the clicks ``(x, y, label)`` and/or box of an object on a frame.

        The prompt is checked at once (:class:`PromptError`, :class:`ModelError`) and recorded
        (``prompts_changed``); its mask is computed on the compute thread, written to the
        project (state ``prompted``) and announced with ``labels_changed``. The returned future
        gives the mask, or ``None`` when a newer prompt replaced this one first. With neither
        clicks nor box the keyframe is deleted. With ``auto_correct`` on, a prompt on a frame a
        propagation produced also re-propagates its segment (:mod:`.corrections`).
        """
        return self._request_prompt(frame, clicks, box, obj_id)

    def _request_prompt(self, frame: int, clicks: list[Click] | None, box: Box | None,
                        obj_id: int | None, correct: bool | None = None, done: Future | None = None) -> Future:
        obj_id = self._obj(obj_id)
        self.check_idle("change prompts", prompts=True)
        self._check_frame(frame)
        clicks = [(float(x), float(y), int(v)) for x, y, v in (clicks or [])]
        if not clicks and box is None:
            self.delete_keyframe(obj_id, frame)
            return _finished(np.zeros((self.source.height, self.source.width), bool))
        prompt = Prompt.build(
            object=obj_id,
            frame=frame,
            points=[(x, y) for x, y, _ in clicks],
            labels=[v for _, _, v in clicks],
            box=None if box is None else tuple(float(b) for b in box),
        )
        prompt.check_frame(len(self.source), self.source.height, self.source.width)
        self.engine.require_model()
        state = KeyframePrompt(clicks=tuple(clicks), box=prompt.box, computed=False)
        self._log_prompt(obj_id, frame, clicks, prompt.box)

        def compute(tracker):
            return tracker.add_points(
                obj_id, frame, points=prompt.points or None, labels=prompt.labels or None, box=prompt.box
            )

        return self.prompt_jobs.enqueue((obj_id, frame), state, compute, self.stored_prompt(prompt), None,
                                        correct, done)

    def _log_prompt(self, obj_id: int, frame: int, clicks: list[Click], box: Box | None) -> None:
        """Log the clicks ``clicks`` adds to the object's prompt on ``frame``, and a new box."""
        old = list(self.clicks(obj_id, frame))
        for click in clicks:
            if click in old:
                old.remove(click)
            else:
                self.activity.log("click", object=obj_id, frames=(frame, frame), positive=bool(click[2]))
        if box is not None and box != self.box(obj_id, frame):
            self.activity.log("box", object=obj_id, frames=(frame, frame))

    def request_click(
        self, frame: int, x: float, y: float, positive: bool = True, obj_id: int | None = None
    ) -> Future:
        """Add a click for the (active) object to its prompt on ``frame`` (see :meth:`request_prompt`)."""
        obj_id = self._obj(obj_id)
        clicks = self.clicks(obj_id, frame) + [(float(x), float(y), 1 if positive else 0)]
        return self.request_prompt(frame, clicks, self.box(obj_id, frame), obj_id=obj_id)

    def request_box(self, frame: int, box: Box, obj_id: int | None = None) -> Future:
        """Set the box ``[x0, y0, x1, y1]`` of the (active) object on a frame (clicks kept)."""
        obj_id = self._obj(obj_id)
        return self.request_prompt(frame, self.clicks(obj_id, frame), box, obj_id=obj_id)

    def request_label_mask_prompt(
        self, frame: int, obj_id: int | None = None, labels2d: np.ndarray | None = None
    ) -> Future:
        """Make the object's pixels on ``frame`` (from ``labels2d`` or the project) its mask
        prompt there (see :meth:`request_prompt`)."""
        obj_id = self._obj(obj_id)
        self.check_idle("change prompts", prompts=True)
        self._check_frame(frame)
        labels2d = np.asarray(read_plane(self.store, frame) if labels2d is None else labels2d)
        if labels2d.shape != (self.source.height, self.source.width):
            raise PromptError(
                f"labels of shape {labels2d.shape} do not match the "
                f"{self.source.width}x{self.source.height} video"
            )
        region = labels2d == obj_id
        if not region.any():
            raise PromptError(
                f"object {obj_id} has no pixels on frame {frame}; paint it first or click on it"
            )
        self.engine.require_model()
        prompt = self.stored_prompt(Prompt(object=obj_id, frame=frame, mask="store:pending"))
        self.activity.log("mask", object=obj_id, frames=(frame, frame))
        return self.prompt_jobs.enqueue(
            (obj_id, frame),
            KeyframePrompt(mask=True, computed=False),
            lambda tracker: tracker.add_mask(obj_id, frame, region),
            prompt,
            region,
        )

    def set_prompt(self, frame: int, clicks: list[Click] | None = None, box: Box | None = None,
                   obj_id: int | None = None) -> np.ndarray:
        """:meth:`request_prompt`, waiting for the mask (returned)."""
        return self.request_prompt(frame, clicks, box, obj_id).result()

    def add_click(self, frame: int, x: float, y: float, positive: bool = True,
                  obj_id: int | None = None) -> np.ndarray:
        """:meth:`request_click`, waiting for the mask (returned)."""
        return self.request_click(frame, x, y, positive, obj_id).result()

    def set_box(self, frame: int, box: Box, obj_id: int | None = None) -> np.ndarray:
        """:meth:`request_box`, waiting for the mask (returned)."""
        return self.request_box(frame, box, obj_id).result()

    def use_label_mask_as_prompt(self, frame: int, obj_id: int | None = None,
                                 labels2d: np.ndarray | None = None) -> np.ndarray:
        """:meth:`request_label_mask_prompt`, waiting for the model's mask (returned)."""
        return self.request_label_mask_prompt(frame, obj_id, labels2d).result()

    def delete_keyframe(self, obj_id: int, frame: int) -> None:
        """Remove the object's prompt on ``frame`` (its tracked masks stay until re-propagated)."""
        self.check_idle("change prompts")
        key = (obj_id, frame)
        existed = self.prompt_book.delete(key)
        with self.store_lock:
            self.store.delete_prompt(obj_id, *self.store_where(frame))
        self.engine.clear_prompt(obj_id, frame)
        self.events.prompts_changed.emit(obj_id, frame)
        if existed:
            self.events.keyframes_changed.emit(obj_id)

    def _on_compute_error(self, exc: BaseException) -> None:
        self.events.error.emit(exc)

    # ------------------------------------------------------------ propagation
    @property
    def running(self) -> bool:
        """Whether a propagation is in progress."""
        return self._running.locked()

    def check_idle(self, what: str, *, prompts: bool = False, writes: bool = True) -> None:
        """Refuse ``what`` during a run; during a correction too, unless it is a prompt
        (``prompts``: it waits on the compute thread behind the correction); in a read-only
        session too, if it ``writes`` the project."""
        if self._closed:
            raise StoreError("this project was closed; open it again")
        if writes:
            self.check_writable(what)
        if self.running:
            raise PromptError(f"cannot {what} while a propagation runs; wait or press Cancel")
        correcting = self.corrections.correcting
        if correcting is not None and not prompts:
            obj, a, b = correcting
            raise PromptError(f"cannot {what} while object {obj} is re-propagated on frames {a}-{b}; "
                              "try again in a moment")

    def plan(self, direction: str = "both", start: int | None = None, end: int | None = None,
             obj_ids: list[int] | None = None) -> Plan:
        """The passes a propagation of the session's prompts would run
        (:func:`~napari_sam2_track.passes.plan_passes`); raises :class:`PromptError` for a
        request the tracker would refuse."""
        return plan_passes(self.prompt_book.keyframes_by_object(), len(self.source), direction,
                           start, end, obj_ids)

    def propagate_iter(
        self,
        direction: str = "both",
        start: int | None = None,
        end: int | None = None,
        cancel: threading.Event | None = None,
        obj_ids: list[int] | None = None,
    ) -> PropagationRun:
        """Check the request now and return an iterator of
        :class:`~napari_sam2_track.pipeline.Progress` that propagates into the project.

        Raises :class:`PromptError` at once if a propagation already runs, there are no
        prompts, or the range is invalid; :class:`ModelError` without a model. The run waits
        for prompts still being computed, then announces ``run_started``,
        ``run_progressed``, ``labels_changed`` and ``run_finished``. Frames written before a
        cancel, a :meth:`~.run.PropagationRun.close` or an error stay written.
        """
        if self._closed:
            raise StoreError("this project was closed; open it again")
        self.check_writable("propagate")
        plan = self.plan(direction, start, end, obj_ids)  # "no prompts yet" before the model
        self.engine.require_model()
        from ..pipeline import Request

        if not self._running.acquire(blocking=False):
            raise PromptError("a propagation is already running; wait for it or press Cancel")
        self.engine.compute.cancel_prefetch()
        report = RunReport(self.events, self.activity, plan)
        gen = propagate(self.engine, self.store, Request(direction, start, end, obj_ids), cancel,
                        report)
        run = PropagationRun(self.events, gen, self._running, report.outcome)
        self.events.running_changed.emit(True)
        return run

    # ------------------------------------------------------------------ edits
    def persist_edit(self, frame: int, labels2d: np.ndarray) -> list[int]:
        """Save a hand-edited label image of ``frame``; the changed objects are marked
        ``edited`` (a new label value becomes a new object). Returns their ids."""
        self.check_idle("save edits")
        self._check_frame(frame)
        labels2d = np.asarray(labels2d)
        if labels2d.shape != (self.source.height, self.source.width):
            raise StoreError(
                f"edited labels of shape {labels2d.shape} do not match the "
                f"{self.source.width}x{self.source.height} video"
            )
        before = self.store.object_ids()
        with self.store_lock:  # a version of each changed object, kept before the write
            changed = edit_frame(self.store, frame, labels2d, who=self.activity.annotator)
        if changed:
            self.activity.log("brush", frames=(frame, frame), objects=[int(o) for o in changed])
        if self.store.object_ids() != before:
            self.events.objects_changed.emit()
        self.events.labels_changed.emit(frame, frame)
        return changed

    def labels_array(self) -> StoreLabelsArray:
        """An array view of the project's labels whose edits go through :meth:`persist_edit`."""
        return StoreLabelsArray(self.store, on_edit=self.persist_edit)

    # -------------------------------------------------------------- lifecycle
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop background work, free the model's state and give the project back."""
        if self._closed:
            return
        correcting = self.corrections.correcting is not None
        self.corrections.stop.set()  # a correction stops after its current frame
        self.engine.compute.close(timeout=60.0 if correcting else 0.0)
        self.activity.flush(timeout=10.0)
        with self.store_lock:
            self._closed = True
        self.engine.drop_tracker()
        self.store.close()  # gives back the project's write lock (held since it was opened)
        self.events.closed.emit()
