"""Corrections as methods of an :class:`~.core.AnnotationSession` (mixed in): re-propagate a
segment around a prompt, undo it, restore a track version. The work is done by the session's
:class:`~.corrections.Corrections` on its compute thread."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..errors import PromptError
from .corrections import Correction

if TYPE_CHECKING:
    from .corrections import Corrections
    from .events import Box, Click

__all__ = ["CorrectionsMixin"]


class CorrectionsMixin:
    """The correction methods of a session. It uses only these members of the session:"""

    corrections: "Corrections"

    if TYPE_CHECKING:
        def check_idle(self, what: str, *, prompts: bool = False, writes: bool = True) -> None: ...

        def _obj(self, obj_id: int | None) -> int: ...

        def _request_prompt(self, frame: int, clicks: "list[Click] | None", box: "Box | None",
                            obj_id: int | None, correct: bool | None = None,
                            done: Future | None = None) -> Future: ...

    @property
    def auto_correct(self) -> bool:
        """A prompt on a frame a propagation produced re-propagates its segment
        (:mod:`.corrections`)."""
        return self.corrections.auto_correct

    @auto_correct.setter
    def auto_correct(self, on: bool) -> None:
        self.corrections.auto_correct = bool(on)

    @property
    def last_correction(self) -> Correction | None:
        return self.corrections.last_correction

    @property
    def correcting(self) -> tuple[int, int, int] | None:
        """``(object, start, end)`` while a correction re-propagates, else ``None``."""
        return self.corrections.correcting

    def correction_segment(self, obj_id: int, frame: int) -> tuple[int, int]:
        """The frames ``(a, b)`` a correction of ``obj_id`` on ``frame`` re-propagates."""
        return self.corrections.segment(obj_id, frame)

    def was_propagated(self, obj_id: int, frame: int) -> bool:
        """Whether a propagation produced ``obj_id``'s mask on ``frame`` (its row has a run)."""
        return self.corrections.was_propagated(obj_id, frame)

    def undo_segment(self, obj_id: int | None = None) -> tuple[int, int] | None:
        """The frames an undo of the object's last correction would restore, if any."""
        return self.corrections.undo_span(self._obj(obj_id))

    def request_correction(self, frame: int, clicks: list[Click] | None = None, box: Box | None = None,
                           obj_id: int | None = None) -> Future:
        """Set the object's prompt on ``frame`` (as :meth:`request_prompt`) and re-propagate
        its segment. The future gives the :class:`~.corrections.Correction` once the segment
        is written, or ``None`` when a newer prompt on that frame replaced this one."""
        if not clicks and box is None:
            raise PromptError("a correction needs clicks or a box on the frame")
        done: Future = Future()
        self._request_prompt(frame, clicks, box, obj_id, correct=True, done=done)
        return done

    def correct(self, frame: int, clicks: list[Click] | None = None, box: Box | None = None,
                obj_id: int | None = None) -> Correction | None:
        """:meth:`request_correction`, waiting for the re-propagated segment."""
        return self.request_correction(frame, clicks, box, obj_id).result()

    def request_undo(self, obj_id: int | None = None) -> Future:
        """Restore the segment of the object's last correction (masks, rows, prompts) on the
        compute thread; the future gives the :class:`~.corrections.Correction` undone."""
        obj_id = self._obj(obj_id)
        self.check_idle("undo a correction")
        return self.corrections.request_undo(obj_id)

    def request_restore(self, obj_id: int, number: int) -> Future:
        """Restore object ``obj_id`` to how it was before its version ``number`` (masks, rows,
        prompts; :func:`~napari_sam2_track.project.versions.restore_version`) on the compute
        thread; the future gives the :class:`~.corrections.Correction` undone."""
        self.check_idle("restore a version")
        return self.corrections.request_restore(obj_id, number)

    def undo_correction(self, obj_id: int | None = None) -> Correction:
        """:meth:`request_undo`, waiting until the segment is restored."""
        return self.request_undo(obj_id).result()
