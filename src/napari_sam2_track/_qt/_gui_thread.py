"""Session events to the GUI thread: the session emits from its worker threads, widgets may
only be touched from the GUI thread."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from qtpy.QtCore import QObject, Signal


class _Relay(QObject):
    """Lives on the GUI thread; a queued signal carries callables there."""

    call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run)

    @staticmethod
    def _run(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except RuntimeError as exc:  # the widget was deleted while the call waited
            if "deleted" not in str(exc):
                raise


_relay: _Relay | None = None


def on_gui_thread(callback: Callable[..., Any]) -> Callable[..., None]:
    """``callback`` wrapped to run on the GUI thread: at once when called there, queued
    (in order) when called from another thread. Create wrappers on the GUI thread."""
    global _relay
    if _relay is None:
        _relay = _Relay()
    relay = _relay

    def wrapper(*args: Any) -> None:
        relay.call.emit(partial(callback, *args))

    return wrapper


class SessionLink:
    """Connections of one view to one session's signals, made and undone together (attach on
    open, detach on close: idempotent)."""

    def __init__(self) -> None:
        self._pairs: list[tuple[Any, Callable]] = []

    def connect(self, signal: Any, callback: Callable[..., Any]) -> None:
        wrapped = on_gui_thread(callback)
        signal.connect(wrapped)
        self._pairs.append((signal, wrapped))

    def disconnect_all(self) -> None:
        pairs, self._pairs = self._pairs, []
        for signal, wrapped in pairs:
            try:
                signal.disconnect(wrapped)
            except (ValueError, RuntimeError):
                pass

    def __bool__(self) -> bool:
        return bool(self._pairs)
