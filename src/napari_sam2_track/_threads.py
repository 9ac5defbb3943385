"""Thread helpers shared by the frame reader and the store writer."""

from __future__ import annotations

import os
import threading


def lower_thread_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to model compute when cores are busy (Linux).

    Decoding and writing run beside the model on their own threads; on a CPU-only machine they
    would otherwise preempt PyTorch's worker threads and stall them at every barrier.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass
