"""Keep kafka-python's log readable while a broker is away.

kafka-python logs every reconnect attempt, several lines each and some with a traceback: about
230 lines per process over a 10 s and a 60 s outage. anomstream reports the outage itself (one
line when the broker is lost, one when it is back: `anomstream.stream.readiness`), so of the
client's records only the first of each kind per interval is kept, without its traceback. A
new kind of message (an authorization error, say) still shows at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["KafkaLogThrottle"]


class KafkaLogThrottle(logging.Filter):
    """A handler filter: records of `kafka.*` loggers pass once per `interval` seconds per
    (logger, message template); everything else passes untouched."""

    def __init__(self, interval: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        # The traceback of a reconnect failure says nothing the message does not.
        record.exc_info = None
        record.exc_text = None
        return True
