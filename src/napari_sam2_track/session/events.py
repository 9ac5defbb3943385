"""What an :class:`~.core.AnnotationSession` announces, and the small records its events carry.

Events are psygnal signals (napari's own event library). They are emitted on the thread that
made the change: the caller's thread for direct calls, the session's compute thread when a
prompt's mask is ready, the propagation's thread during a run. A GUI connects through
something that hops to its own thread (the docks use ``_qt._gui_thread.on_gui_thread``).
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import Signal, SignalGroup

Click = tuple[float, float, int]  # (x, y, label): label 1 positive, 0 negative
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels
PromptKey = tuple[int, int]  # (object id, frame)


@dataclass(frozen=True)
class KeyframePrompt:
    """The prompt of one object on one frame as the user last set it.

    Clicks and/or a box, or ``mask=True`` for a mask prompt (the mask itself lives in the
    project). ``computed`` is False while its mask is still being computed.
    """

    clicks: tuple[Click, ...] = ()
    box: Box | None = None
    mask: bool = False
    computed: bool = True

    @property
    def kind(self) -> str:
        if self.mask:
            return "mask"
        if self.box is not None:
            return "box+points" if self.clicks else "box"
        return "points"


@dataclass(frozen=True)
class RunStarted:
    """A propagation began writing into the project as run ``run_id``."""

    run_id: int
    direction: str
    start: int
    end: int
    total: int  # frames it will compute


@dataclass(frozen=True)
class RunFinished:
    """A propagation ended: ``completed``, ``cancelled`` or ``failed`` (then ``error``)."""

    run_id: int | None  # None when it ended before writing anything
    status: str
    frames: int  # frames computed
    error: str | None = None


class SessionEvents(SignalGroup):
    """The signals of one session (``session.events``).

    objects_changed(): objects were added, removed, renamed or re-categorised.
    active_object_changed(obj_id | None): the object that new prompts belong to.
    schema_changed(schema): the project's schema was replaced.
    model_changed(model | None): the model prompts and propagation use.
    prompts_changed(obj_id, frame): the prompt of an object on a frame was set, replaced or
        deleted (at once, before its mask is computed).
    keyframes_changed(obj_id): the object's list of prompted frames changed.
    prompt_started(obj_id, frame) / prompt_finished(obj_id, frame): the model works on / is
        done with that prompt (finished also when it failed or was superseded).
    busy_changed(bool): prompts are waiting or being computed / all are done.
    labels_changed(start, stop): the project's labels changed on frames ``start..stop``.
    current_frame_changed(frame): the frame under the user's eyes (its embedding is prefetched).
    frame_requested(frame): something asks the viewer to show ``frame`` (``go_to_frame``).
    embedding_ready(frame): the image embedding of ``frame`` is cached.
    running_changed(bool): a propagation was accepted / has ended (prompts and edits are
        refused meanwhile).
    run_started(RunStarted) / run_progressed(Progress) / run_finished(RunFinished).
    correction_started(obj_id, start, end): a correction re-propagates the object on frames
        ``start..end`` (after its prompt's mask was written).
    correction_finished(Correction): the segment is re-propagated, or restored by an undo
        (``undone``); ``labels_changed`` came first.
    error(exception): background work failed (the message is one line for user errors).
    closed(): the session was closed; its project is released.
    """

    objects_changed = Signal()
    active_object_changed = Signal(object)
    schema_changed = Signal(object)
    model_changed = Signal(object)
    prompts_changed = Signal(int, int)
    keyframes_changed = Signal(int)
    prompt_started = Signal(int, int)
    prompt_finished = Signal(int, int)
    busy_changed = Signal(bool)
    labels_changed = Signal(int, int)
    current_frame_changed = Signal(int)
    frame_requested = Signal(int)
    embedding_ready = Signal(int)
    running_changed = Signal(bool)
    run_started = Signal(object)
    run_progressed = Signal(object)
    run_finished = Signal(object)
    correction_started = Signal(int, int, int)
    correction_finished = Signal(object)
    error = Signal(object)
    closed = Signal()
