"""Review, QC verification and annotator analytics, without Qt and without the engine.

* :mod:`.flags` — frames most likely to be wrong, from the per-frame tables;
* :mod:`.qc` — satisfactory/unsatisfactory decisions per masklet, append-only and durable,
  without the project's write lock;
* :mod:`.sampling` — sampled QC: a seeded sample of a masklet's frames, judged frame by frame;
* :mod:`.segments` — undo of a segment re-propagated by a correction;
* :mod:`.analytics` — effort measures from the interaction log, beside the SAM 2 paper's;
* :mod:`.models` — the typed records, :func:`read_review` (the one reader of QC state) and
  :func:`log_event`, the writer of the interaction log;
* :mod:`.visibility` — the visible/occluded/out-of-frame rule shared with the exporters.

See ``docs/review.md``.
"""

from .models import (
    Change,
    DecisionStatus,
    Event,
    Flag,
    Masklet,
    QCDecision,
    ReviewState,
    SampleRecord,
    Suggestion,
    default_reviewer,
    log_event,
    read_events,
    read_review,
)

__all__ = [
    "Change",
    "DecisionStatus",
    "Event",
    "Flag",
    "Masklet",
    "QCDecision",
    "ReviewState",
    "SampleRecord",
    "Suggestion",
    "default_reviewer",
    "log_event",
    "read_events",
    "read_review",
]
