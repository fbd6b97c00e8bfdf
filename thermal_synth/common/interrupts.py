"""Ctrl-C that arrives while a file is half written.

Library code such as `zipfile` turns a KeyboardInterrupt raised inside its `close()` into an
unrelated `ValueError`, so a user who presses Ctrl-C at the wrong millisecond sees a traceback
instead of "interrupted". Short, non-reentrant writes run under `deferred_interrupt()`: the
signal is remembered and delivered as a normal KeyboardInterrupt once the write is complete.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Holds SIGINT for the duration of the block, then re-raises it as KeyboardInterrupt.

    Outside the main thread Python cannot install signal handlers; there the block runs unguarded,
    which is harmless because signals are only ever delivered to the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
