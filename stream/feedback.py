"""The operator feedback topic (STUB: to be built).

Contract with the pipeline: `handle(record, out, now)` is called for every record of
`feedback.topic`; it raises `InvalidRecord` for a message that cannot be used (it becomes a
dead letter), else applies it once (recorded in the machine's state) and appends any alert
transition it causes to `out.alerts` through `pipeline.emit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anomstream.stream.pipeline import BatchOutput, Pipeline, RecordLike

__all__ = ["FeedbackHandler"]


class FeedbackHandler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def handle(self, record: RecordLike, out: BatchOutput, now: float) -> None:
        pass

    def describe(self, state: Any) -> dict[str, Any]:
        return {}
