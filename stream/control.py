"""The control topic: mode and maintenance messages (STUB: to be built).

Contract with the pipeline: `handle(record, out, now)` is called for every record of
`modes.control_topic`; it raises `InvalidRecord` for a message that cannot be used (it becomes
a dead letter), else records the machine's mode schedule in its state (`state.ops["modes"]`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anomstream.stream.pipeline import BatchOutput, Pipeline, RecordLike

__all__ = ["ControlHandler"]


class ControlHandler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def handle(self, record: RecordLike, out: BatchOutput, now: float) -> None:
        pass
