"""One process-wide stop request, set by SIGTERM/SIGINT; a second signal aborts.

`install()` runs first thing in `main()`, before the heavy imports, so a SIGTERM that arrives
while the process is still starting (an orchestrator scaling down, a test stopping it early)
asks for a clean stop instead of killing it.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["STOP", "install"]

STOP = threading.Event()
log = logging.getLogger("anomstream")


def _handle(signum: int, _frame: FrameType | None) -> None:
    if STOP.is_set():  # a second Ctrl-C: the operator really wants out
        raise KeyboardInterrupt
    log.info("%s received: finishing the current batch, then stopping", signal.Signals(signum).name)
    STOP.set()


def install() -> None:
    """Route SIGTERM and SIGINT to `STOP` (main thread only, as Python requires)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)
